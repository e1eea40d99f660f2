package backend

import (
	"fmt"
	"slices"

	"github.com/gomlx/gomlx/backends"
)

// ConvGeneral fills in the default strides, dilations and paddings (the pure-Go backend
// fails on nil ones, which graph.Convolve and the convolution gradients pass) and lowers
// the convolution to patches times a matrix: the strided slices of the (dilated, padded)
// input at each kernel tap, concatenated, then one DotGeneral with the kernel reshaped to a
// matrix. When a kernel has more taps than the output has positions, as in the convolution
// that computes a kernel's gradient, the slices are taken per output position instead, so
// that the number of ops stays small. Grouped convolutions go to the backend as they are.
func (b *filledBuilder) ConvGeneral(input, kernel op, axes backends.ConvolveAxesConfig, strides []int,
	paddings [][2]int, inputDilations, kernelDilations []int, channelGroupCount, batchGroupCount int) (op, error) {
	n := len(axes.InputSpatial)
	strides = orOnes(strides, n)
	inputDilations = orOnes(inputDilations, n)
	kernelDilations = orOnes(kernelDilations, n)
	if paddings == nil {
		paddings = make([][2]int, n)
	}
	if channelGroupCount > 1 || batchGroupCount > 1 {
		return b.Builder.ConvGeneral(input, kernel, axes, strides, paddings, inputDilations, kernelDilations,
			channelGroupCount, batchGroupCount)
	}

	// Canonical layouts: x [batch, spatial..., channels], k [spatial..., in, out].
	x, err := b.Transpose(input, append(append([]int{axes.InputBatch}, axes.InputSpatial...), axes.InputChannels)...)
	if err != nil {
		return nil, err
	}
	k, err := b.Transpose(kernel, append(slices.Clone(axes.KernelSpatial), axes.KernelInputChannels, axes.KernelOutputChannels)...)
	if err != nil {
		return nil, err
	}
	zero, err := b.scalar(0, b.shape(x).DType)
	if err != nil {
		return nil, err
	}
	pads := make([]backends.PadAxis, n+2)
	for i := range n {
		pads[1+i] = backends.PadAxis{Start: paddings[i][0], End: paddings[i][1], Interior: inputDilations[i] - 1}
	}
	if x, err = b.Pad(x, zero, pads...); err != nil {
		return nil, err
	}

	xs, ks := b.shape(x), b.shape(k)
	batch, channels := xs.Dimensions[0], xs.Dimensions[n+1]
	kernelDims := ks.Dimensions[:n]
	outChannels := ks.Dimensions[n+1]
	if ks.Dimensions[n] != channels {
		return nil, fmt.Errorf("ConvGeneral: the input has %d channels, the kernel takes %d", channels, ks.Dimensions[n])
	}
	outDims := make([]int, n)
	taps, positions := 1, 1
	for i := range n {
		span := (kernelDims[i]-1)*kernelDilations[i] + 1
		outDims[i] = (xs.Dimensions[1+i]-span)/strides[i] + 1
		if xs.Dimensions[1+i] < span {
			return nil, fmt.Errorf("ConvGeneral: spatial axis %d has %d values (padded), less than the kernel's span %d",
				i, xs.Dimensions[1+i], span)
		}
		taps *= kernelDims[i]
		positions *= outDims[i]
	}

	var patches op
	if taps <= positions {
		// One strided slice per kernel tap, each covering every output position.
		parts := make([]op, 0, taps)
		for _, t := range windows(kernelDims) {
			starts, limits, step := b.window(batch, channels, n)
			for i := range n {
				starts[1+i] = t[i] * kernelDilations[i]
				limits[1+i] = starts[1+i] + (outDims[i]-1)*strides[i] + 1
				step[1+i] = strides[i]
			}
			s, err := b.Slice(x, starts, limits, step)
			if err != nil {
				return nil, err
			}
			parts = append(parts, s)
		}
		if patches, err = b.Concatenate(n+1, parts...); err != nil {
			return nil, err
		}
	} else {
		// One dilated slice per output position, each covering every kernel tap.
		parts := make([]op, 0, positions)
		for _, o := range windows(outDims) {
			starts, limits, step := b.window(batch, channels, n)
			for i := range n {
				starts[1+i] = o[i] * strides[i]
				limits[1+i] = starts[1+i] + (kernelDims[i]-1)*kernelDilations[i] + 1
				step[1+i] = kernelDilations[i]
			}
			s, err := b.Slice(x, starts, limits, step)
			if err != nil {
				return nil, err
			}
			if s, err = b.Reshape(s, batch, 1, taps*channels); err != nil {
				return nil, err
			}
			parts = append(parts, s)
		}
		if patches, err = b.Concatenate(1, parts...); err != nil {
			return nil, err
		}
		if patches, err = b.Reshape(patches, append(append([]int{batch}, outDims...), taps*channels)...); err != nil {
			return nil, err
		}
	}
	km, err := b.Reshape(k, taps*channels, outChannels)
	if err != nil {
		return nil, err
	}
	y, err := b.DotGeneral(patches, []int{n + 1}, nil, km, []int{0}, nil)
	if err != nil {
		return nil, err
	}
	// Back to the requested output layout.
	perm := make([]int, n+2)
	perm[axes.OutputBatch] = 0
	for i, a := range axes.OutputSpatial {
		perm[a] = 1 + i
	}
	perm[axes.OutputChannels] = n + 1
	return b.Transpose(y, perm...)
}

// window returns slice bounds that cover the batch and channel axes whole.
func (b *filledBuilder) window(batch, channels, n int) (starts, limits, step []int) {
	starts, limits, step = make([]int, n+2), make([]int, n+2), make([]int, n+2)
	limits[0], limits[n+1] = batch, channels
	step[0], step[n+1] = 1, 1
	return
}

func orOnes(v []int, n int) []int {
	if v != nil {
		return v
	}
	out := make([]int, n)
	for i := range out {
		out[i] = 1
	}
	return out
}

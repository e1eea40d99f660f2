package nn

import (
	. "github.com/gomlx/gomlx/pkg/core/graph"
	"github.com/gomlx/gomlx/pkg/core/shapes"
	"github.com/gomlx/gomlx/pkg/ml/context"
)

// Resize resizes NHWC images to height x width by bilinear interpolation, as PyTorch's
// F.interpolate(mode="bilinear", align_corners=False) without antialiasing (mmseg's resize):
// output pixel d samples the input at s = (d + 0.5) * in/out - 0.5, clamped at 0, from its
// neighbours floor(s) and floor(s) + 1 (clamped at in - 1), for upsampling and downsampling
// alike. Each axis is a product with a constant [out, in] interpolation matrix, so the
// gradient is exact. (GoMLX v0.26's Interpolate has the same forward values but a wrong
// gradient through its GatherSlices, and fails on axes shorter than 3.)
func Resize(x *Node, height, width int) *Node {
	if x.Rank() != 4 {
		panic("nn.Resize: want NHWC images")
	}
	h, w := x.Shape().Dim(1), x.Shape().Dim(2)
	g := x.Graph()
	if h != height {
		a := ConvertDType(Const(g, interpolationMatrix(h, height)), x.DType())
		x = Einsum("oh,bhwc->bowc", a, x)
	}
	if w != width {
		a := ConvertDType(Const(g, interpolationMatrix(w, width)), x.DType())
		x = Einsum("ow,bhwc->bhoc", a, x)
	}
	return x
}

// interpolationMatrix is the [out][in] matrix of PyTorch's 1D linear interpolation with
// align_corners=False (upsample_bilinear2d's area_pixel_compute_source_index).
func interpolationMatrix(in, out int) [][]float64 {
	m := make([][]float64, out)
	scale := float64(in) / float64(out)
	for d := range m {
		m[d] = make([]float64, in)
		src := max((float64(d)+0.5)*scale-0.5, 0)
		i0 := min(int(src), in-1)
		i1 := min(i0+1, in-1)
		l1 := src - float64(i0)
		m[d][i0] += 1 - l1
		m[d][i1] += l1
	}
	return m
}

// Dropout2d is PyTorch's Dropout2d on NHWC images: in training, each channel of each image
// is zeroed with probability p and the others are scaled by 1/(1-p); otherwise, and with
// p = 0, the identity.
func Dropout2d(ctx *context.Context, x *Node, p float64, train bool) *Node {
	if !train || p <= 0 {
		return x
	}
	if p >= 1 {
		return ZerosLike(x)
	}
	dims := x.Shape().Dimensions
	u := ctx.RandomUniform(x.Graph(), shapes.Make(x.DType(), dims[0], 1, 1, dims[3]))
	keep := ConvertDType(GreaterOrEqual(u, Scalar(x.Graph(), x.DType(), p)), x.DType())
	return Mul(x, MulScalar(keep, 1/(1-p)))
}

package backend

import (
	"github.com/gomlx/gomlx/backends"
	"github.com/gomlx/gomlx/pkg/core/shapes"
)

// Batch normalisation for the pure-Go backend, with XLA's semantics: batch statistics over
// every axis but featureAxis, the biased variance.

// perFeature broadcasts a [C] vector along featureAxis of s.
func (b *filledBuilder) perFeature(v op, s shapes.Shape, featureAxis int) (op, error) {
	return b.BroadcastInDim(v, s, []int{featureAxis})
}

func reducedAxes(rank, featureAxis int) []int {
	axes := make([]int, 0, rank-1)
	for a := range rank {
		if a != featureAxis {
			axes = append(axes, a)
		}
	}
	return axes
}

// meanOver returns the mean of x over every axis but featureAxis, as a [C] vector.
func (b *filledBuilder) meanOver(x op, featureAxis int) (op, error) {
	s := b.shape(x)
	sum, err := b.ReduceSum(x, reducedAxes(s.Rank(), featureAxis)...)
	if err != nil {
		return nil, err
	}
	n, err := b.scalar(float64(s.Size()/s.Dimensions[featureAxis]), s.DType)
	if err != nil {
		return nil, err
	}
	nb, err := b.fill(n, b.shape(sum))
	if err != nil {
		return nil, err
	}
	return b.Div(sum, nb)
}

// invStd returns 1 / sqrt(variance + epsilon).
func (b *filledBuilder) invStd(variance op, epsilon float32) (op, error) {
	s := b.shape(variance)
	eps, err := b.scalar(float64(epsilon), s.DType)
	if err != nil {
		return nil, err
	}
	epsB, err := b.fill(eps, s)
	if err != nil {
		return nil, err
	}
	v, err := b.Add(variance, epsB)
	if err != nil {
		return nil, err
	}
	return b.Rsqrt(v)
}

// normalize returns (x - mean) * inv * scale + offset, with [C] vectors.
func (b *filledBuilder) normalize(x, mean, inv, scale, offset op, featureAxis int) (op, error) {
	s := b.shape(x)
	meanB, err := b.perFeature(mean, s, featureAxis)
	if err != nil {
		return nil, err
	}
	centered, err := b.Sub(x, meanB)
	if err != nil {
		return nil, err
	}
	factor, err := b.Mul(inv, scale)
	if err != nil {
		return nil, err
	}
	factorB, err := b.perFeature(factor, s, featureAxis)
	if err != nil {
		return nil, err
	}
	y, err := b.Mul(centered, factorB)
	if err != nil {
		return nil, err
	}
	offsetB, err := b.perFeature(offset, s, featureAxis)
	if err != nil {
		return nil, err
	}
	return b.Add(y, offsetB)
}

func (b *filledBuilder) BatchNormForTraining(operand, scale, offset op, epsilon float32, featureAxis int) (op, op, op, error) {
	s := b.shape(operand)
	mean, err := b.meanOver(operand, featureAxis)
	if err != nil {
		return nil, nil, nil, err
	}
	meanB, err := b.perFeature(mean, s, featureAxis)
	if err != nil {
		return nil, nil, nil, err
	}
	centered, err := b.Sub(operand, meanB)
	if err != nil {
		return nil, nil, nil, err
	}
	sq, err := b.Mul(centered, centered)
	if err != nil {
		return nil, nil, nil, err
	}
	variance, err := b.meanOver(sq, featureAxis)
	if err != nil {
		return nil, nil, nil, err
	}
	inv, err := b.invStd(variance, epsilon)
	if err != nil {
		return nil, nil, nil, err
	}
	y, err := b.normalize(operand, mean, inv, scale, offset, featureAxis)
	return y, mean, variance, err
}

func (b *filledBuilder) BatchNormForInference(operand, scale, offset, mean, variance op, epsilon float32, featureAxis int) (op, error) {
	inv, err := b.invStd(variance, epsilon)
	if err != nil {
		return nil, err
	}
	return b.normalize(operand, mean, inv, scale, offset, featureAxis)
}

// BatchNormGradient returns the gradients of BatchNormForTraining's output with respect to
// its operand, scale and offset, given the batch mean and variance:
//
//	x̂ = (x - mean) / sqrt(var + eps)
//	dOffset = Σ dy,  dScale = Σ dy·x̂
//	dx = scale / sqrt(var + eps) · (dy - dOffset/n - x̂·dScale/n)
func (b *filledBuilder) BatchNormGradient(operand, scale, mean, variance, gradOutput op, epsilon float32, featureAxis int) (op, op, op, error) {
	s := b.shape(operand)
	axes := reducedAxes(s.Rank(), featureAxis)
	zeroOffset, err := b.fill(mustScalar(b.scalar(0, s.DType)), b.shape(scale))
	if err != nil {
		return nil, nil, nil, err
	}
	inv, err := b.invStd(variance, epsilon)
	if err != nil {
		return nil, nil, nil, err
	}
	ones, err := b.fill(mustScalar(b.scalar(1, s.DType)), b.shape(scale))
	if err != nil {
		return nil, nil, nil, err
	}
	xhat, err := b.normalize(operand, mean, inv, ones, zeroOffset, featureAxis)
	if err != nil {
		return nil, nil, nil, err
	}
	gradOffset, err := b.ReduceSum(gradOutput, axes...)
	if err != nil {
		return nil, nil, nil, err
	}
	prod, err := b.Mul(gradOutput, xhat)
	if err != nil {
		return nil, nil, nil, err
	}
	gradScale, err := b.ReduceSum(prod, axes...)
	if err != nil {
		return nil, nil, nil, err
	}
	meanDy, err := b.meanOver(gradOutput, featureAxis)
	if err != nil {
		return nil, nil, nil, err
	}
	meanDyXhat, err := b.meanOver(prod, featureAxis)
	if err != nil {
		return nil, nil, nil, err
	}
	// dy - mean(dy) - x̂·mean(dy·x̂), times scale·inv.
	meanDyB, err := b.perFeature(meanDy, s, featureAxis)
	if err != nil {
		return nil, nil, nil, err
	}
	t, err := b.Sub(gradOutput, meanDyB)
	if err != nil {
		return nil, nil, nil, err
	}
	mB, err := b.perFeature(meanDyXhat, s, featureAxis)
	if err != nil {
		return nil, nil, nil, err
	}
	xm, err := b.Mul(xhat, mB)
	if err != nil {
		return nil, nil, nil, err
	}
	if t, err = b.Sub(t, xm); err != nil {
		return nil, nil, nil, err
	}
	factor, err := b.Mul(scale, inv)
	if err != nil {
		return nil, nil, nil, err
	}
	factorB, err := b.perFeature(factor, s, featureAxis)
	if err != nil {
		return nil, nil, nil, err
	}
	gradOperand, err := b.Mul(t, factorB)
	return gradOperand, gradScale, gradOffset, err
}

func mustScalar(o op, err error) op {
	if err != nil {
		panic(err)
	}
	return o
}

var _ backends.Builder = (*filledBuilder)(nil)

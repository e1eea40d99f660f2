package nn

import (
	. "github.com/gomlx/gomlx/pkg/core/graph"
	"github.com/gomlx/gomlx/pkg/core/shapes"
	"github.com/gomlx/gomlx/pkg/ml/context"
)

// Resize resizes NHWC images to height x width by bilinear interpolation, as PyTorch's
// F.interpolate(mode="bilinear", align_corners=False) without antialiasing (mmseg's resize):
// output pixel d samples the input at s = (d + 0.5) * in/out - 0.5, clamped at 0, from its
// two neighbours, for upsampling and downsampling alike. It is GoMLX's Interpolate with
// half-pixel centres, whose weights 1 - |i - s| over a 3-pixel span, renormalised, are
// PyTorch's clamped ones at both borders; the gradient flows through its gather.
func Resize(x *Node, height, width int) *Node {
	if x.Rank() != 4 {
		panic("nn.Resize: want NHWC images")
	}
	if x.Shape().Dim(1) == height && x.Shape().Dim(2) == width {
		return x
	}
	return Interpolate(x, NoInterpolation, height, width, NoInterpolation).
		Bilinear().HalfPixelCenters(true).AlignCorner(false).Done()
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

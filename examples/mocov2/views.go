package mocov2

import (
	"errors"
	"math"

	"github.com/gomlx/gomlx/pkg/core/dtypes"
	. "github.com/gomlx/gomlx/pkg/core/graph"
	"github.com/gomlx/gomlx/pkg/core/shapes"
	"github.com/gomlx/gomlx/pkg/ml/context"

	"github.com/goselfsup/goselfsup/registry"
)

// ViewsConfig is the augmentation that MoCoV2 applies in the graph to make each of its two
// views, drawn for every image and view from the context's random state:
//
//   - a random resized crop, sampled back to the image's size with the nearest pixel
//     (torchvision's RandomResizedCrop without its ten retries: the crop's sides are
//     clipped to the image instead);
//   - a random horizontal flip;
//   - colour jitter: brightness, contrast and saturation factors drawn from [1 - s, 1 + s],
//     applied in that order (torchvision's ColorJitter without hue, in a fixed order);
//   - grayscale with probability gray_prob (ITU-R 601 luma, kept as three channels).
//
// The colour matters: without it the two views of an image share their colours, and
// telling images apart by colour alone solves the task.
type ViewsConfig struct {
	Scale       [2]float64 `toml:"scale" doc:"the range of the crop's area, as a fraction of the image's"`
	Ratio       [2]float64 `toml:"ratio" doc:"the range of the crop's aspect ratio (width / height), drawn log-uniformly"`
	FlipProb    float64    `toml:"flip_prob" doc:"the probability of a horizontal flip"`
	ColorJitter [3]float64 `toml:"color_jitter" doc:"the strengths of brightness, contrast and saturation jitter (0: none)"`
	GrayProb    float64    `toml:"gray_prob" doc:"the probability of turning a view to grayscale"`
}

func defaultViews() ViewsConfig {
	return ViewsConfig{Scale: [2]float64{0.5, 1}, Ratio: [2]float64{3.0 / 4, 4.0 / 3}, FlipProb: 0.5,
		ColorJitter: [3]float64{0.4, 0.4, 0.4}, GrayProb: 0.2}
}

func (v ViewsConfig) validate() error {
	var errs []error
	if v.Scale[0] <= 0 || v.Scale[0] > v.Scale[1] || v.Scale[1] > 1 {
		errs = append(errs, registry.FieldErrorf("views.scale", "must be a range within (0, 1], got %v", v.Scale))
	}
	if v.Ratio[0] <= 0 || v.Ratio[0] > v.Ratio[1] {
		errs = append(errs, registry.FieldErrorf("views.ratio", "must be a positive range, got %v", v.Ratio))
	}
	if v.FlipProb < 0 || v.FlipProb > 1 {
		errs = append(errs, registry.FieldErrorf("views.flip_prob", "must be in [0, 1], got %g", v.FlipProb))
	}
	for _, j := range v.ColorJitter {
		if j < 0 || j > 1 {
			errs = append(errs, registry.FieldErrorf("views.color_jitter", "each strength must be in [0, 1], got %v", v.ColorJitter))
			break
		}
	}
	if v.GrayProb < 0 || v.GrayProb > 1 {
		errs = append(errs, registry.FieldErrorf("views.gray_prob", "must be in [0, 1], got %g", v.GrayProb))
	}
	return errors.Join(errs...)
}

// Apply returns a random view of each image of a batch (uint8 [B, H, W, 3] RGB in, the same
// out): output pixel (i, j) is the input pixel nearest to the point (i + 0.5, j + 0.5) of
// the crop mapped onto the output grid, then flipped and its colours jittered.
func (v ViewsConfig) Apply(ctx *context.Context, images *Node) *Node {
	g := images.Graph()
	dims := images.Shape().Dimensions
	n, h, w := dims[0], dims[1], dims[2]
	u := ctx.RandomUniform(g, shapes.Make(dtypes.Float32, n, 9))
	col := func(i int) *Node { return Slice(u, AxisRange(), AxisElem(i)) } // [B, 1]
	lerp := func(x *Node, lo, hi float64) *Node { return AddScalar(MulScalar(x, hi-lo), lo) }

	area := lerp(col(0), v.Scale[0], v.Scale[1])
	ratio := Exp(lerp(col(1), math.Log(v.Ratio[0]), math.Log(v.Ratio[1])))
	ch := MinScalar(Sqrt(Div(area, ratio)), 1) // the crop's height, as a fraction of the image's
	cw := MinScalar(Sqrt(Mul(area, ratio)), 1)
	y0 := Mul(col(2), OneMinus(ch))
	x0 := Mul(col(3), OneMinus(cw))
	flip := LessThan(col(4), Scalar(g, dtypes.Float32, v.FlipProb)) // [B, 1]

	// sample maps output positions 0..size-1 to input indices: [B, size].
	sample := func(start, extent *Node, size int) *Node {
		grid := DivScalar(AddScalar(Iota(g, shapes.Make(dtypes.Float32, 1, size), 1), 0.5), float64(size))
		pos := MulScalar(Add(start, Mul(grid, extent)), float64(size))
		return ClipScalar(ConvertDType(Floor(pos), dtypes.Int32), 0, float64(size-1))
	}
	ys := sample(y0, ch, h)
	xs := sample(x0, cw, w)
	xs = Where(BroadcastToDims(flip, n, w), Sub(Scalar(g, dtypes.Int32, w-1), xs), xs)

	batch := BroadcastToDims(Iota(g, shapes.Make(dtypes.Int32, n, 1, 1), 0), n, h, w)
	rows := BroadcastToDims(ExpandAxes(ys, -1), n, h, w)
	cols := BroadcastToDims(ExpandAxes(xs, 1), n, h, w)
	view := Gather(images, Stack([]*Node{batch, rows, cols}, -1))
	return v.color(view, func(i int) *Node { return Reshape(col(5+i), n, 1, 1, 1) })
}

// color jitters the colours of uint8 images [B, H, W, 3] with the uniform draws u(0..3),
// each [B, 1, 1, 1].
func (v ViewsConfig) color(images *Node, u func(i int) *Node) *Node {
	if v.ColorJitter == [3]float64{} && v.GrayProb == 0 {
		return images
	}
	g := images.Graph()
	x := ConvertDType(images, dtypes.Float32)
	luma := func(x *Node) *Node { // [B, H, W, 1]
		w := Const(g, [][][][]float32{{{{0.299, 0.587, 0.114}}}})
		return ReduceAndKeep(Mul(x, w), ReduceSum, -1)
	}
	blend := func(x, other *Node, factor *Node) *Node { // other + factor * (x - other), clipped
		return ClipScalar(Add(other, Mul(factor, Sub(x, other))), 0, 255)
	}
	factor := func(i int) *Node { return AddScalar(MulScalar(u(i), 2*v.ColorJitter[i]), 1-v.ColorJitter[i]) }
	if v.ColorJitter[0] > 0 { // brightness: blend with black
		x = blend(x, ZerosLike(x), factor(0))
	}
	if v.ColorJitter[1] > 0 { // contrast: blend with the mean luma of the image
		x = blend(x, ReduceAndKeep(luma(x), ReduceMean, 1, 2), factor(1))
	}
	if v.ColorJitter[2] > 0 { // saturation: blend with the pixel's luma
		x = blend(x, luma(x), factor(2))
	}
	if v.GrayProb > 0 {
		gray := LessThan(u(3), Scalar(g, dtypes.Float32, v.GrayProb))
		x = Where(BroadcastToDims(gray, x.Shape().Dimensions...), BroadcastToDims(luma(x), x.Shape().Dimensions...), x)
	}
	return ConvertDType(Round(x), dtypes.Uint8)
}

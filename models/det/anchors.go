package det

import (
	"errors"
	"fmt"
	"math"

	"github.com/gomlx/gomlx/pkg/core/dtypes"
	. "github.com/gomlx/gomlx/pkg/core/graph"
	"github.com/gomlx/gomlx/pkg/core/shapes"
	"github.com/gomlx/gomlx/pkg/core/tensors"

	"github.com/goselfsup/goselfsup/registry"
)

// PriorGenerators is the registry namespace of anchor (prior) generators: mmdet 2.x's
// PRIOR_GENERATORS (ANCHOR_GENERATORS), the namespace of an RPN head's anchor_generator.
const PriorGenerators = "prior_generators"

// AnchorGenerator is mmdet 2.x's AnchorGenerator (mmdet/core/anchor/anchor_generator.py) for
// the keys below; centers (explicit per-level centres) is not supported. The Faster R-CNN
// R50-C4 RPN uses strides = [16], ratios = [0.5, 1.0, 2.0], scales = [2, 4, 8, 16, 32]:
// 15 anchors per location, 32 to 512 pixels wide.
//
// The base anchors of a level are centred at (center_offset * base_size,
// center_offset * base_size), with h_ratios = sqrt(ratios), w_ratios = 1 / h_ratios,
// ws = base_size * w_ratios * scales and hs likewise; scale_major = true (the default)
// orders them ratio-major (index = ratio_index * len(scales) + scale_index, mmdet's
// w_ratios[:, None] * scales[None, :]), false scale-major. Each is [cx - 0.5 ws,
// cy - 0.5 hs, cx + 0.5 ws, cy + 0.5 hs]: no +1 anywhere.
type AnchorGenerator struct {
	Strides         []int     `toml:"strides" doc:"the stride of each feature level, in pixels (square strides only)" required:"true"`
	Ratios          []float64 `toml:"ratios" doc:"the height / width ratios of the anchors" required:"true"`
	Scales          []float64 `toml:"scales" doc:"the anchor sizes as multiples of the base size; or give octave_base_scale and scales_per_octave"`
	BaseSizes       []int     `toml:"base_sizes" doc:"the base size of each level; empty: the strides"`
	ScaleMajor      bool      `toml:"scale_major" doc:"true: ratio-major order of the base anchors (mmdet's w_ratios[:, None] * scales[None, :]); false: scale-major"`
	OctaveBaseScale float64   `toml:"octave_base_scale" doc:"with scales_per_octave, instead of scales: scales = octave_base_scale * 2^(i / scales_per_octave)"`
	ScalesPerOctave int       `toml:"scales_per_octave" doc:"see octave_base_scale"`
	CenterOffset    float64   `toml:"center_offset" doc:"the anchor centre as a fraction of the base size (mmdet 2.x: 0, the centre at the grid point)"`
}

func init() {
	registry.Add(PriorGenerators, "AnchorGenerator", "mmdet 2.x's grid anchors: base anchors per level shifted by the stride",
		func() *AnchorGenerator { return &AnchorGenerator{ScaleMajor: true} })
}

// Validate checks the keys as mmdet's constructor does.
func (a *AnchorGenerator) Validate() error {
	var errs []error
	if len(a.Strides) == 0 {
		errs = append(errs, registry.FieldErrorf("strides", "must name at least one level"))
	}
	for _, s := range a.Strides {
		if s < 1 {
			errs = append(errs, registry.FieldErrorf("strides", "must be positive, got %d", s))
		}
	}
	if len(a.Ratios) == 0 {
		errs = append(errs, registry.FieldErrorf("ratios", "must hold at least one ratio"))
	}
	for _, r := range a.Ratios {
		if !(r > 0) {
			errs = append(errs, registry.FieldErrorf("ratios", "must be positive, got %g", r))
		}
	}
	if len(a.BaseSizes) > 0 && len(a.BaseSizes) != len(a.Strides) {
		errs = append(errs, registry.FieldErrorf("base_sizes", "must give one size per stride (%d), got %d", len(a.Strides), len(a.BaseSizes)))
	}
	octave := a.OctaveBaseScale != 0 || a.ScalesPerOctave != 0
	switch {
	case len(a.Scales) > 0 && octave:
		errs = append(errs, registry.FieldErrorf("scales", "scales and octave_base_scale/scales_per_octave are mutually exclusive"))
	case len(a.Scales) == 0 && !octave:
		errs = append(errs, registry.FieldErrorf("scales", "give scales, or octave_base_scale and scales_per_octave"))
	case octave && (a.OctaveBaseScale <= 0 || a.ScalesPerOctave < 1):
		errs = append(errs, registry.FieldErrorf("octave_base_scale", "octave_base_scale and scales_per_octave must both be positive"))
	}
	for _, s := range a.Scales {
		if !(s > 0) {
			errs = append(errs, registry.FieldErrorf("scales", "must be positive, got %g", s))
		}
	}
	return errors.Join(errs...)
}

// Build returns the validated generator itself.
func (a *AnchorGenerator) Build(*registry.Env) (any, error) {
	if err := a.Validate(); err != nil {
		return nil, err
	}
	return a, nil
}

// NumLevels is the number of feature levels (strides).
func (a *AnchorGenerator) NumLevels() int { return len(a.Strides) }

// NumBaseAnchors is the number of anchors per location, A = len(ratios) * len(scales),
// the same at every level.
func (a *AnchorGenerator) NumBaseAnchors() int { return len(a.Ratios) * len(a.scales()) }

// scales are the scales, from octave_base_scale when scales is empty.
func (a *AnchorGenerator) scales() []float64 {
	if len(a.Scales) > 0 {
		return a.Scales
	}
	s := make([]float64, a.ScalesPerOctave)
	for i := range s {
		s[i] = math.Pow(2, float64(i)/float64(a.ScalesPerOctave)) * a.OctaveBaseScale
	}
	return s
}

func (a *AnchorGenerator) baseSize(level int) int {
	if len(a.BaseSizes) > 0 {
		return a.BaseSizes[level]
	}
	return a.Strides[level]
}

// BaseAnchors are mmdet 2.x's gen_single_level_base_anchors of a level: [A][4] boxes
// (x1, y1, x2, y2) around the level's centre, in the order described on AnchorGenerator,
// computed in T's precision with mmdet's order of operations (mmdet holds scales and
// ratios as float32 tensors; T = float32 reproduces its values bit for bit).
func BaseAnchors[T float32 | float64](a *AnchorGenerator, level int) [][4]T {
	w := T(a.baseSize(level))
	h := w
	// mmdet: center_offset * w in Python floats, then cast to the anchors' dtype.
	xc := T(a.CenterOffset * float64(a.baseSize(level)))
	yc := xc
	scales := a.scales()
	hr := make([]T, len(a.Ratios))
	wr := make([]T, len(a.Ratios))
	for i, r := range a.Ratios {
		hr[i] = T(math.Sqrt(float64(T(r))))
		wr[i] = 1 / hr[i]
	}
	var ws, hs []T
	if a.ScaleMajor {
		for i := range a.Ratios {
			for _, s := range scales {
				ws = append(ws, T(T(w*wr[i])*T(s)))
				hs = append(hs, T(T(h*hr[i])*T(s)))
			}
		}
	} else {
		for _, s := range scales {
			for i := range a.Ratios {
				ws = append(ws, T(T(w*T(s))*wr[i]))
				hs = append(hs, T(T(h*T(s))*hr[i]))
			}
		}
	}
	out := make([][4]T, len(ws))
	for i := range ws {
		// T(...) rounds each product, so that no fused multiply-add changes the result.
		hw, hh := T(T(0.5)*ws[i]), T(T(0.5)*hs[i])
		out[i] = [4]T{xc - hw, yc - hh, xc + hw, yc + hh}
	}
	return out
}

// GridAnchors is mmdet 2.x's single_level_grid_priors on the host: the anchors of a
// featH x featW feature map of a level, flat data of [featH * featW * A, 4] boxes in
// mmdet's order: location-major (row y, then column x: location y * featW + x), then the
// A base anchors, each shifted by (x * stride, y * stride). T = float32 matches mmdet's
// float32 anchors exactly.
func GridAnchors[T float32 | float64](a *AnchorGenerator, level, featH, featW int) []T {
	base := BaseAnchors[T](a, level)
	stride := T(a.Strides[level])
	out := make([]T, 0, featH*featW*len(base)*4)
	for y := 0; y < featH; y++ {
		sy := T(T(y) * stride)
		for x := 0; x < featW; x++ {
			sx := T(T(x) * stride)
			for _, b := range base {
				out = append(out, b[0]+sx, b[1]+sy, b[2]+sx, b[3]+sy)
			}
		}
	}
	return out
}

// Anchors returns GridAnchors as a tensor [featH * featW * A, 4] of dtype (Float32 or
// Float64), to feed a graph as a constant: the anchors of a padded canvas bucket are
// static, so each bucket computes them once.
func (a *AnchorGenerator) Anchors(level, featH, featW int, dtype dtypes.DType) (*tensors.Tensor, error) {
	if level < 0 || level >= len(a.Strides) {
		return nil, fmt.Errorf("AnchorGenerator: level %d out of range [0, %d)", level, len(a.Strides))
	}
	if featH < 1 || featW < 1 {
		return nil, fmt.Errorf("AnchorGenerator: feature map %dx%d is empty", featH, featW)
	}
	n := featH * featW * a.NumBaseAnchors()
	switch dtype {
	case dtypes.Float32:
		return tensors.FromFlatDataAndDimensions(GridAnchors[float32](a, level, featH, featW), n, 4), nil
	case dtypes.Float64:
		return tensors.FromFlatDataAndDimensions(GridAnchors[float64](a, level, featH, featW), n, 4), nil
	}
	return nil, fmt.Errorf("AnchorGenerator: anchors must be Float32 or Float64, not %s", dtype)
}

// ValidFlags is, in the graph, mmdet 2.x's AnchorGenerator.single_level_valid_flags
// followed by anchor_inside_flags (anchor_head.py's _get_targets_single): which anchors of
// a level take part in the targets.
//
//   - anchors: [N, 4], N = featH * featW * A, in GridAnchors' order (Anchors as a constant).
//   - padShape: [..., 2] (h, w) of each image after mmdet's per-image Pad (size_divisor 32),
//     any numeric dtype, or nil for imgShape. The anchors of locations y, x with
//     y * stride < pad_h and x * stride < pad_w are valid (mmdet: y < ceil(pad_h / stride),
//     the same for integer y), the rest lie in the batch padding.
//   - imgShape: [..., 2] (h, w) of each resized image before padding (mmdet's img_shape).
//     With allowedBorder >= 0 a valid anchor must also satisfy x1 >= -allowedBorder,
//     y1 >= -allowedBorder, x2 < img_w + allowedBorder, y2 < img_h + allowedBorder (the
//     R50-C4 RPN: allowed_border = 0); allowedBorder < 0 keeps every valid anchor.
//
// It returns [..., N] Bool, one row per image; the shape's leading axes are those of
// imgShape. The image sizes are tensors so that one compiled graph serves every image of a
// padded canvas bucket.
func (a *AnchorGenerator) ValidFlags(anchors *Node, level, featH, featW int, padShape, imgShape *Node, allowedBorder float64) *Node {
	g := anchors.Graph()
	nA := a.NumBaseAnchors()
	n := featH * featW * nA
	if anchors.Rank() != 2 || anchors.Shape().Dim(0) != n || anchors.Shape().Dim(1) != 4 {
		panicf("ValidFlags: anchors must be [%d, 4] for a %dx%d map of %d anchors, got %s", n, featH, featW, nA, anchors.Shape())
	}
	if imgShape.Rank() < 1 || imgShape.Shape().Dim(-1) != 2 {
		panicf("ValidFlags: imgShape must be [..., 2] (h, w), got %s", imgShape.Shape())
	}
	if padShape == nil {
		padShape = imgShape
	}
	dt := anchors.DType()
	lead := imgShape.Shape().Dimensions[:imgShape.Rank()-1]
	b := prod(lead)
	img := Reshape(ConvertDType(imgShape, dt), b, 2)
	pad := Reshape(ConvertDType(padShape, dt), b, 2)
	stride := float64(a.Strides[level])

	// The location of each anchor, as mmdet's meshgrid(valid_x, valid_y) expanded over A.
	loc := Iota(g, shapes.Make(dtypes.Int32, featH, featW, nA), 0)
	ys := Reshape(MulScalar(ConvertDType(loc, dt), stride), 1, n)
	xs := Reshape(MulScalar(ConvertDType(Iota(g, shapes.Make(dtypes.Int32, featH, featW, nA), 1), dt), stride), 1, n)
	padH, padW := Slice(pad, AxisRange(), AxisElem(0)), Slice(pad, AxisRange(), AxisElem(1))
	valid := LogicalAnd(LessThan(ys, padH), LessThan(xs, padW)) // [b, n]
	if allowedBorder >= 0 {
		col := func(i int) *Node { return Reshape(Slice(anchors, AxisRange(), AxisElem(i)), 1, n) }
		imgH := AddScalar(Slice(img, AxisRange(), AxisElem(0)), allowedBorder)
		imgW := AddScalar(Slice(img, AxisRange(), AxisElem(1)), allowedBorder)
		inside := LogicalAnd(
			LogicalAnd(GreaterOrEqual(col(0), Scalar(g, dt, -allowedBorder)), GreaterOrEqual(col(1), Scalar(g, dt, -allowedBorder))),
			LogicalAnd(LessThan(col(2), imgW), LessThan(col(3), imgH)))
		valid = LogicalAnd(valid, inside)
	}
	return Reshape(valid, append(append([]int{}, lead...), n)...)
}

// prod is the product of dims, 1 for none.
func prod(dims []int) int {
	p := 1
	for _, d := range dims {
		p *= d
	}
	return p
}

// boolConst is a Bool tensor [dims...] filled with v.
func boolConst(g *Graph, v bool, dims ...int) *Node {
	return BroadcastToDims(Const(g, v), dims...)
}

// panicf reports a programming error in building a graph (a shape that does not fit).
func panicf(format string, args ...any) { panic(fmt.Sprintf(format, args...)) }

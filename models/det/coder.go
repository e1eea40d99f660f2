package det

import (
	"errors"
	"math"

	. "github.com/gomlx/gomlx/pkg/core/graph"

	"github.com/goselfsup/goselfsup/registry"
)

// BBoxCoders is the registry namespace of box coders: mmdet 2.x's BBOX_CODERS, the
// namespace of a head's bbox_coder.
const BBoxCoders = "bbox_coders"

// DefaultWHRatioClip is delta2bbox's wh_ratio_clip: Decode clamps dw and dh to
// ±|log(16 / 1000)| ≈ ±4.135.
const DefaultWHRatioClip = 16.0 / 1000

// DeltaXYWHBBoxCoder is mmdet 2.x's DeltaXYWHBBoxCoder (mmdet/core/bbox/coder/
// delta_xywh_bbox_coder.py): boxes (x1, y1, x2, y2) against reference boxes as normalised
// centre shifts and log size ratios, with no +1 anywhere. The R50-C4 RPN uses means 0 and
// stds 1, its RoI head stds [0.1, 0.1, 0.2, 0.2].
type DeltaXYWHBBoxCoder struct {
	TargetMeans [4]float64 `toml:"target_means" doc:"subtracted from the deltas (dx, dy, dw, dh) after encoding, added back before decoding"`
	TargetStds  [4]float64 `toml:"target_stds" doc:"the deltas are divided by them after encoding, multiplied before decoding"`
	ClipBorder  bool       `toml:"clip_border" doc:"clip decoded boxes to the image shape, when one is given"`
	AddCtrClamp bool       `toml:"add_ctr_clamp" doc:"clamp the decoded centre shift (dx * w, dy * h) to ±ctr_clamp pixels, and dw, dh only from above"`
	CtrClamp    float64    `toml:"ctr_clamp" doc:"see add_ctr_clamp"`
}

func init() {
	registry.Add(BBoxCoders, "DeltaXYWHBBoxCoder", "mmdet 2.x's (dx, dy, dw, dh) box deltas, normalised by means and stds",
		func() *DeltaXYWHBBoxCoder {
			return &DeltaXYWHBBoxCoder{TargetStds: [4]float64{1, 1, 1, 1}, ClipBorder: true, CtrClamp: 32}
		})
}

// Validate refuses zero standard deviations.
func (c *DeltaXYWHBBoxCoder) Validate() error {
	var errs []error
	for _, s := range c.TargetStds {
		if s == 0 {
			errs = append(errs, registry.FieldErrorf("target_stds", "must be non-zero, got %v", c.TargetStds))
			break
		}
	}
	return errors.Join(errs...)
}

// Build returns the validated coder itself.
func (c *DeltaXYWHBBoxCoder) Build(*registry.Env) (any, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	return c, nil
}

// coords splits boxes [..., 4] into four [..., 1] columns.
func coords(b *Node) (x1, y1, x2, y2 *Node) {
	c := Split(b, -1, 4)
	return c[0], c[1], c[2], c[3]
}

// Encode is mmdet 2.x's bbox2delta: the deltas [..., 4] (dx, dy, dw, dh) that turn
// proposals [..., 4] into gt [..., 4] (same shapes, float): with centres px = (x1 + x2) *
// 0.5, sizes pw = x2 - x1 and so on, dx = (gx - px) / pw, dy = (gy - py) / ph,
// dw = log(gw / pw), dh = log(gh / ph), then (d - means) / stds. Degenerate proposals give
// Inf or NaN, as in mmdet; mask them out.
func (c *DeltaXYWHBBoxCoder) Encode(proposals, gt *Node) *Node {
	if proposals.Shape().Dim(-1) != 4 || !proposals.Shape().Equal(gt.Shape()) {
		panicf("Encode: proposals and gt must both be [..., 4], got %s and %s", proposals.Shape(), gt.Shape())
	}
	px1, py1, px2, py2 := coords(proposals)
	gx1, gy1, gx2, gy2 := coords(gt)
	px, py := MulScalar(Add(px1, px2), 0.5), MulScalar(Add(py1, py2), 0.5)
	pw, ph := Sub(px2, px1), Sub(py2, py1)
	gx, gy := MulScalar(Add(gx1, gx2), 0.5), MulScalar(Add(gy1, gy2), 0.5)
	gw, gh := Sub(gx2, gx1), Sub(gy2, gy1)
	d := []*Node{Div(Sub(gx, px), pw), Div(Sub(gy, py), ph), Log(Div(gw, pw)), Log(Div(gh, ph))}
	for i := range d {
		if c.TargetMeans[i] != 0 {
			d[i] = AddScalar(d[i], -c.TargetMeans[i])
		}
		if c.TargetStds[i] != 1 {
			d[i] = DivScalar(d[i], c.TargetStds[i])
		}
	}
	return Concatenate(d, -1)
}

// Decode is mmdet 2.x's delta2bbox with wh_ratio_clip = 16 / 1000; see DecodeWithRatioClip.
func (c *DeltaXYWHBBoxCoder) Decode(rois, deltas, maxShape *Node) *Node {
	return c.DecodeWithRatioClip(rois, deltas, maxShape, DefaultWHRatioClip)
}

// DecodeWithRatioClip is mmdet 2.x's delta2bbox (the version with dxy_wh = pwh * dxy):
//
//   - rois: [..., N, 4] reference boxes (x1, y1, x2, y2), float.
//   - deltas: [..., N, 4*C] (dx, dy, dw, dh) per class, C >= 1 (class-specific regression:
//     C = num_classes), the rois' dtype.
//   - maxShape: [..., 2] (h, w) of each image (the leading axes of rois without N), any
//     numeric dtype, or nil: no clipping.
//
// The deltas are denormalised (d * stds + means); dw and dh are clamped to
// ±|log(whRatioClip)| (with add_ctr_clamp: dw, dh to at most that, and the centre shifts
// dx * pw, dy * ph to ±ctr_clamp); then cx = px + pw * dx, w = pw * exp(dw),
// x1 = cx - 0.5 w, x2 = cx + 0.5 w (likewise y). With clip_border and maxShape, x is
// clamped to [0, w_img] and y to [0, h_img] (not w_img - 1). It returns [..., N, 4*C].
func (c *DeltaXYWHBBoxCoder) DecodeWithRatioClip(rois, deltas, maxShape *Node, whRatioClip float64) *Node {
	if rois.Rank() < 2 || rois.Shape().Dim(-1) != 4 {
		panicf("Decode: rois must be [..., N, 4], got %s", rois.Shape())
	}
	if deltas.Rank() != rois.Rank() || deltas.Shape().Dim(-1)%4 != 0 || deltas.Shape().Dim(-1) == 0 {
		panicf("Decode: deltas must be [..., N, 4*C] for rois %s, got %s", rois.Shape(), deltas.Shape())
	}
	for i := 0; i < rois.Rank()-1; i++ {
		if rois.Shape().Dim(i) != deltas.Shape().Dim(i) {
			panicf("Decode: rois %s and deltas %s differ in their leading axes", rois.Shape(), deltas.Shape())
		}
	}
	dt := rois.DType()
	lead := rois.Shape().Dimensions[:rois.Rank()-2]
	n := rois.Shape().Dim(-2)
	numClasses := deltas.Shape().Dim(-1) / 4
	b := prod(lead)
	r := Reshape(rois, b, n, 1, 4)
	d := Reshape(deltas, b, n, numClasses, 4)

	dc := Split(d, -1, 4)
	for i := range dc {
		if c.TargetStds[i] != 1 {
			dc[i] = MulScalar(dc[i], c.TargetStds[i])
		}
		if c.TargetMeans[i] != 0 {
			dc[i] = AddScalar(dc[i], c.TargetMeans[i])
		}
	}
	x1, y1, x2, y2 := coords(r)
	px, py := MulScalar(Add(x1, x2), 0.5), MulScalar(Add(y1, y2), 0.5)
	pw, ph := Sub(x2, x1), Sub(y2, y1)
	dxw, dyh := Mul(pw, dc[0]), Mul(ph, dc[1])
	maxRatio := math.Abs(math.Log(whRatioClip))
	dw, dh := dc[2], dc[3]
	if c.AddCtrClamp {
		dxw, dyh = ClipScalar(dxw, -c.CtrClamp, c.CtrClamp), ClipScalar(dyh, -c.CtrClamp, c.CtrClamp)
		dw, dh = MinScalar(dw, maxRatio), MinScalar(dh, maxRatio)
	} else {
		dw, dh = ClipScalar(dw, -maxRatio, maxRatio), ClipScalar(dh, -maxRatio, maxRatio)
	}
	gx, gy := Add(px, dxw), Add(py, dyh)
	gw, gh := Mul(pw, Exp(dw)), Mul(ph, Exp(dh))
	hw, hh := MulScalar(gw, 0.5), MulScalar(gh, 0.5)
	bx1, by1, bx2, by2 := Sub(gx, hw), Sub(gy, hh), Add(gx, hw), Add(gy, hh)
	if c.ClipBorder && maxShape != nil {
		if maxShape.Shape().Dim(-1) != 2 || prod(maxShape.Shape().Dimensions[:maxShape.Rank()-1]) != b {
			panicf("Decode: maxShape must be [..., 2] (h, w) for rois %s, got %s", rois.Shape(), maxShape.Shape())
		}
		ms := Reshape(ConvertDType(maxShape, dt), b, 1, 1, 2)
		zero := ZerosLike(bx1)
		mh := BroadcastToDims(Slice(ms, AxisRange(), AxisRange(), AxisRange(), AxisElem(0)), bx1.Shape().Dimensions...)
		mw := BroadcastToDims(Slice(ms, AxisRange(), AxisRange(), AxisRange(), AxisElem(1)), bx1.Shape().Dimensions...)
		bx1, bx2 = Min(Max(bx1, zero), mw), Min(Max(bx2, zero), mw)
		by1, by2 = Min(Max(by1, zero), mh), Min(Max(by2, zero), mh)
	}
	out := Concatenate([]*Node{bx1, by1, bx2, by2}, -1) // [b, n, C, 4]
	return Reshape(out, append(append([]int{}, lead...), n, 4*numClasses)...)
}

package det

import (
	"errors"
	"fmt"

	"github.com/gomlx/gomlx/pkg/core/dtypes"
	. "github.com/gomlx/gomlx/pkg/core/graph"
	"github.com/gomlx/gomlx/pkg/core/shapes"

	"github.com/goselfsup/goselfsup/registry"
)

// BBoxAssigners is the registry namespace of box assigners: mmdet 2.x's BBOX_ASSIGNERS, the
// namespace of a train_cfg's assigner.
const BBoxAssigners = "bbox_assigners"

// The assigned GT index of a box that is not positive (AssignResult.GTInds): mmdet 2.x
// encodes them as 0 (negative) and -1 (ignored), and a positive for GT i as i + 1; here a
// positive is the GT index itself (>= 0).
const (
	// AssignNegative marks a background box: mmdet's gt_inds == 0.
	AssignNegative = -1
	// AssignIgnored marks a box that is neither positive nor negative (its max IoU lies
	// between the thresholds, or it is an invalid anchor or a padding row): mmdet's
	// gt_inds == -1, and the anchors mmdet drops before assigning (inside_flags false).
	AssignIgnored = -2
)

// IoURange is a half-open range [Lo, Hi) of IoU, written in TOML as one number x (mmdet's
// float neg_iou_thr: 0 <= IoU < x) or as two [lo, hi] (mmdet's tuple: lo <= IoU < hi).
type IoURange struct{ Lo, Hi float64 }

// TOMLType says what an IoURange takes, for print_config --describe.
func (IoURange) TOMLType() string { return "float or array of 2 float" }

func (r *IoURange) UnmarshalTOML(v any) error {
	num := func(e any) (float64, bool) {
		switch x := e.(type) {
		case float64:
			return x, true
		case int64:
			return float64(x), true
		}
		return 0, false
	}
	if x, ok := num(v); ok {
		*r = IoURange{0, x}
		return nil
	}
	if arr, ok := v.([]any); ok && len(arr) == 2 {
		lo, ok1 := num(arr[0])
		hi, ok2 := num(arr[1])
		if ok1 && ok2 {
			*r = IoURange{lo, hi}
			return nil
		}
	}
	return fmt.Errorf("expected a number or an array of two numbers [lo, hi], got %v", v)
}

// MaxIoUAssigner is mmdet 2.x's MaxIoUAssigner (mmdet/core/bbox/assigners/
// max_iou_assigner.py), its assign_wrt_overlaps on a precomputed IoU matrix with static
// shapes. ignore_iof_thr must stay -1 (ignored GT boxes are dropped from training, as the
// VOC benchmark does) and gpu_assign_thr has no counterpart. The R50-C4 RPN uses
// pos 0.7, neg 0.3, min_pos_iou 0.3, match_low_quality; its RoI head pos 0.5, neg 0.5,
// min_pos_iou 0.5, no low-quality matches.
type MaxIoUAssigner struct {
	PosIoUThr       float64  `toml:"pos_iou_thr" doc:"boxes whose max IoU is at least this are positive" required:"true"`
	NegIoUThr       IoURange `toml:"neg_iou_thr" doc:"boxes whose max IoU is in [0, x), or in [lo, hi) when given as [lo, hi], are negative" required:"true"`
	MinPosIoU       float64  `toml:"min_pos_iou" doc:"low-quality matching: a GT whose best IoU is below this gets no extra positives"`
	GTMaxAssignAll  bool     `toml:"gt_max_assign_all" doc:"low-quality matching: every box reaching a GT's best IoU becomes its positive, not only the first"`
	IgnoreIoFThr    float64  `toml:"ignore_iof_thr" doc:"only -1: ignored GT boxes are not used"`
	MatchLowQuality bool     `toml:"match_low_quality" doc:"each GT also takes the boxes of its highest IoU as positives (if >= min_pos_iou), a later GT overwriting an earlier"`
}

func init() {
	registry.Add(BBoxAssigners, "MaxIoUAssigner", "mmdet 2.x's max-IoU assignment of boxes to GT boxes, on a padded IoU matrix",
		func() *MaxIoUAssigner {
			return &MaxIoUAssigner{PosIoUThr: -1, NegIoUThr: IoURange{0, -1}, GTMaxAssignAll: true, IgnoreIoFThr: -1, MatchLowQuality: true}
		})
}

// Validate refuses what the static version does not implement.
func (a *MaxIoUAssigner) Validate() error {
	var errs []error
	if a.IgnoreIoFThr >= 0 {
		errs = append(errs, registry.FieldErrorf("ignore_iof_thr", "only -1 (no ignored GT boxes) is supported, got %g", a.IgnoreIoFThr))
	}
	if a.PosIoUThr < 0 {
		errs = append(errs, registry.FieldErrorf("pos_iou_thr", "must be given, at least 0, got %g", a.PosIoUThr))
	}
	if a.NegIoUThr.Hi < a.NegIoUThr.Lo {
		errs = append(errs, registry.FieldErrorf("neg_iou_thr", "must be given, as a number or as [lo, hi] with lo <= hi; got [%g, %g)", a.NegIoUThr.Lo, a.NegIoUThr.Hi))
	}
	return errors.Join(errs...)
}

// Build returns the validated assigner itself.
func (a *MaxIoUAssigner) Build(*registry.Env) (any, error) {
	if err := a.Validate(); err != nil {
		return nil, err
	}
	return a, nil
}

// AssignResult is mmdet 2.x's AssignResult with static shapes, for N boxes (anchors or
// proposals) per image.
type AssignResult struct {
	// GTInds is [..., N] Int32: the assigned GT index (>= 0) of a positive box,
	// AssignNegative (-1) or AssignIgnored (-2).
	GTInds *Node
	// MaxOverlaps is [..., N], the IoU's dtype: each box's largest IoU with a valid GT; 0
	// when the image has no GT box (as mmdet) and for invalid boxes.
	MaxOverlaps *Node
	// Labels is [..., N] Int32: the label of the assigned GT of a positive box, -1 for the
	// others (mmdet's assigned_labels); nil when no GT labels were given (the RPN).
	Labels *Node
}

// Positive is [..., N] Bool: the boxes assigned to a GT.
func (r AssignResult) Positive() *Node {
	return GreaterOrEqual(r.GTInds, ScalarZero(r.GTInds.Graph(), dtypes.Int32))
}

// Negative is [..., N] Bool: the background boxes.
func (r AssignResult) Negative() *Node {
	return Equal(r.GTInds, Scalar(r.GTInds.Graph(), dtypes.Int32, AssignNegative))
}

// Assign is mmdet 2.x's MaxIoUAssigner.assign_wrt_overlaps on
//
//   - iou: [..., N, G] float, the IoU of each box (row) with each GT box (column), G the
//     padded number of GT boxes per image (mmdet's overlaps transposed);
//   - boxValid: [..., N] Bool or nil (all valid): which rows take part. mmdet assigns only
//     the anchors inside the image (inside_flags), so the per-GT maxima run over valid rows
//     only; invalid rows come out AssignIgnored with max overlap 0;
//   - gtValid: [..., G] Bool or nil (all valid): which columns are real GT boxes;
//   - gtLabels: [..., G] integer or nil.
//
// Per image, as mmdet: with no valid GT every valid box is negative (max overlap 0).
// Otherwise a box's max IoU m and argmax j run over valid GT (ties: the lowest GT index,
// torch.max's first maximal index); it is negative if lo <= m < hi (neg_iou_thr),
// positive for j if m >= pos_iou_thr, ignored otherwise. With match_low_quality, for each
// valid GT i in increasing order whose best IoU over the valid boxes gt_max[i] is
// >= min_pos_iou, the boxes with IoU == gt_max[i] (gt_max_assign_all; otherwise only the
// first such box) become positive for i, overwriting what was assigned before, so the
// highest such GT index wins. Equality is exact float comparison, as in mmdet.
func (a *MaxIoUAssigner) Assign(iou, boxValid, gtValid, gtLabels *Node) AssignResult {
	if iou.Rank() < 2 {
		panicf("Assign: iou must be [..., N, G], got %s", iou.Shape())
	}
	g := iou.Graph()
	dt := iou.DType()
	lead := iou.Shape().Dimensions[:iou.Rank()-2]
	n, ng := iou.Shape().Dim(-2), iou.Shape().Dim(-1)
	b := prod(lead)
	outDims := append(append([]int{}, lead...), n)
	ov := Reshape(iou, b, n, ng)

	boxOK := boolConst(g, true, b, n)
	if boxValid != nil {
		if prod(boxValid.Shape().Dimensions) != b*n {
			panicf("Assign: boxValid %s does not match iou %s", boxValid.Shape(), iou.Shape())
		}
		boxOK = Reshape(boxValid, b, n)
	}
	gtOK := boolConst(g, true, b, ng)
	if gtValid != nil {
		if prod(gtValid.Shape().Dimensions) != b*ng {
			panicf("Assign: gtValid %s does not match iou %s", gtValid.Shape(), iou.Shape())
		}
		gtOK = Reshape(gtValid, b, ng)
	}
	pair := LogicalAnd(Reshape(boxOK, b, n, 1), Reshape(gtOK, b, 1, ng)) // [b, n, ng]
	// IoU is >= 0, so -1 never wins a maximum over real pairs.
	ov = Where(pair, ov, Scalar(g, dt, -1))

	i32 := func(v int) *Node { return Scalar(g, dtypes.Int32, v) }
	gtIdx := Iota(g, shapes.Make(dtypes.Int32, b, n, ng), 2)
	maxOv := ReduceMax(ov, -1) // [b, n]
	// The first GT reaching the maximum, as torch.max(dim) returns.
	argmax := ReduceMin(Where(Equal(ov, Reshape(maxOv, b, n, 1)), gtIdx, i32(ng)), -1)

	lo, hi := Scalar(g, dt, a.NegIoUThr.Lo), Scalar(g, dt, a.NegIoUThr.Hi)
	neg := LogicalAnd(GreaterOrEqual(maxOv, lo), LessThan(maxOv, hi))
	pos := GreaterOrEqual(maxOv, Scalar(g, dt, a.PosIoUThr))
	inds := Where(pos, argmax, Where(neg, i32(AssignNegative), i32(AssignIgnored)))

	if a.MatchLowQuality {
		gtMax := ReduceMax(ov, -2) // [b, ng], over valid boxes; -1 if there are none
		ok := LogicalAnd(gtOK, GreaterOrEqual(gtMax, Scalar(g, dt, a.MinPosIoU)))
		hit := Equal(ov, Reshape(gtMax, b, 1, ng)) // [b, n, ng]
		if !a.GTMaxAssignAll {
			// Only the first valid box reaching gt_max (mmdet's gt_argmax_overlaps).
			boxIdx := Iota(g, shapes.Make(dtypes.Int32, b, n, ng), 1)
			first := ReduceMin(Where(LogicalAnd(hit, pair), boxIdx, i32(n)), -2) // [b, ng]
			hit = Equal(boxIdx, Reshape(first, b, 1, ng))
		}
		lq := LogicalAnd(LogicalAnd(hit, pair), Reshape(ok, b, 1, ng))
		last := ReduceMax(Where(lq, gtIdx, i32(-1)), -1) // the latest GT overwrites
		inds = Where(GreaterOrEqual(last, i32(0)), last, inds)
	}

	// An image without GT: every valid box is negative, max overlap 0.
	hasGT := Reshape(ReduceLogicalOr(gtOK, -1), b, 1)
	noGT := BroadcastToDims(LogicalNot(hasGT), b, n)
	inds = Where(noGT, i32(AssignNegative), inds)
	inds = Where(boxOK, inds, i32(AssignIgnored))
	maxOv = Where(LogicalAnd(boxOK, BroadcastToDims(hasGT, b, n)), maxOv, ZerosLike(maxOv))

	r := AssignResult{GTInds: Reshape(inds, outDims...), MaxOverlaps: Reshape(maxOv, outDims...)}
	if gtLabels != nil {
		if prod(gtLabels.Shape().Dimensions) != b*ng {
			panicf("Assign: gtLabels %s does not match iou %s", gtLabels.Shape(), iou.Shape())
		}
		lab := Reshape(ConvertDType(gtLabels, dtypes.Int32), b, 1, ng)
		sel := Equal(gtIdx, Reshape(inds, b, n, 1))
		picked := ReduceSum(Where(sel, BroadcastToDims(lab, b, n, ng), ZerosLike(gtIdx)), -1)
		r.Labels = Reshape(Where(GreaterOrEqual(inds, i32(0)), picked, i32(-1)), outDims...)
	}
	return r
}

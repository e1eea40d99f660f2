package det

import (
	"errors"
	"fmt"

	"github.com/gomlx/gomlx/pkg/core/dtypes"
	. "github.com/gomlx/gomlx/pkg/core/graph"
	"github.com/gomlx/gomlx/pkg/core/shapes"

	"github.com/goselfsup/goselfsup/models/nn"
	"github.com/goselfsup/goselfsup/registry"
)

// BBoxHeadConfig is mmdet 2.x's BBoxHead with with_avg_pool, as the C4 detectors' RoI
// head uses it: each RoI's features (the shared head's output, roi_feat_size x
// roi_feat_size) averaged, then fc_cls to num_classes + 1 scores (background last, mmdet
// 2.x's order) and fc_reg to 4 deltas per class (class-specific) or 4 (agnostic).
type BBoxHeadConfig struct {
	WithAvgPool      bool          `toml:"with_avg_pool" doc:"average each RoI's features (the C4 head; only true is supported)"`
	RoIFeatSize      int           `toml:"roi_feat_size" doc:"the RoI features' side"`
	InChannels       int           `toml:"in_channels" doc:"the RoI features' channels" required:"true"`
	NumClasses       int           `toml:"num_classes" doc:"the object classes, background not counted" required:"true"`
	BBoxCoder        registry.Spec `toml:"bbox_coder" registry:"bbox_coders" doc:"the deltas' coder (DeltaXYWHBBoxCoder, stds [0.1, 0.1, 0.2, 0.2])"`
	RegClassAgnostic bool          `toml:"reg_class_agnostic" doc:"one set of deltas for every class"`
	LossCls          LossConfig    `toml:"loss_cls" doc:"the classification loss: CrossEntropyLoss (softmax)"`
	LossBBox         LossConfig    `toml:"loss_bbox" doc:"the deltas' loss: L1Loss"`
}

func init() {
	registry.Add(registry.Heads, "BBoxHead", "mmdet 2.x's box head: average-pooled RoI features, fc_cls (background last) and fc_reg",
		func() *BBoxHeadConfig {
			return &BBoxHeadConfig{WithAvgPool: true, RoIFeatSize: 7,
				LossCls:  LossConfig{Type: "CrossEntropyLoss", LossWeight: 1},
				LossBBox: LossConfig{Type: "L1Loss", LossWeight: 1}}
		})
}

func (c *BBoxHeadConfig) Validate() error {
	var errs []error
	if !c.WithAvgPool {
		errs = append(errs, registry.FieldErrorf("with_avg_pool", "only the average-pooled head (true) is supported"))
	}
	if c.RoIFeatSize < 1 {
		errs = append(errs, registry.FieldErrorf("roi_feat_size", "must be at least 1, got %d", c.RoIFeatSize))
	}
	if c.InChannels < 1 {
		errs = append(errs, registry.FieldErrorf("in_channels", "must be at least 1, got %d", c.InChannels))
	}
	if c.NumClasses < 1 {
		errs = append(errs, registry.FieldErrorf("num_classes", "must be at least 1, got %d", c.NumClasses))
	}
	if c.BBoxCoder.IsZero() {
		errs = append(errs, registry.FieldErrorf("bbox_coder", "is required"))
	}
	if c.LossCls.Type != "CrossEntropyLoss" || c.LossCls.UseSigmoid {
		errs = append(errs, registry.FieldErrorf("loss_cls", "only CrossEntropyLoss with use_sigmoid = false is supported, got %+v", c.LossCls))
	}
	if c.LossBBox.Type != "L1Loss" {
		errs = append(errs, registry.FieldErrorf("loss_bbox", "only L1Loss is supported (the C4 head's), got type %q", c.LossBBox.Type))
	}
	return errors.Join(errs...)
}

// BBoxHead is a built BBoxHead; its variables are named as mmdet's: fc_cls (N(0, 0.01)) and
// fc_reg (N(0, 0.001)), zero biases.
type BBoxHead struct {
	cfg          *BBoxHeadConfig
	Coder        *DeltaXYWHBBoxCoder
	fcCls, fcReg *nn.Linear
}

// Build builds the head in the scope of the registry.Env.
func (c *BBoxHeadConfig) Build(env *registry.Env) (any, error) {
	s, err := registry.Need[*nn.Scope](env)
	if err != nil {
		return nil, err
	}
	h := &BBoxHead{cfg: c}
	if h.Coder, err = registry.Build[*DeltaXYWHBBoxCoder](env, c.BBoxCoder); err != nil {
		return nil, fmt.Errorf("bbox_coder: %w", err)
	}
	h.fcCls = nn.NewLinearNormal(s.In("fc_cls"), c.InChannels, c.NumClasses+1, 0.01)
	h.fcReg = nn.NewLinearNormal(s.In("fc_reg"), c.InChannels, 4*h.regClasses(), 0.001)
	return h, nil
}

func (h *BBoxHead) regClasses() int {
	if h.cfg.RegClassAgnostic {
		return 1
	}
	return h.cfg.NumClasses
}

// NumClasses is the number of object classes (the background, index NumClasses, not
// counted).
func (h *BBoxHead) NumClasses() int { return h.cfg.NumClasses }

// InChannels is in_channels.
func (h *BBoxHead) InChannels() int { return h.cfg.InChannels }

// Forward returns the class scores [R, num_classes + 1] and the deltas [R, 4 * classes]
// of the RoI features x [R, S, S, C] (train is unused: the head has no BN).
func (h *BBoxHead) Forward(x *Node, train bool) (cls, reg *Node) {
	pooled := ReduceMean(x, 1, 2)
	return h.fcCls.Forward(pooled), h.fcReg.Forward(pooled)
}

// RoITargets are the sampled RoIs of a batch and what they were assigned, as static slots:
// mmdet's SamplingResult with its bbox_head.get_targets.
type RoITargets struct {
	// RoIs is [R, 4]: each slot's box (a proposal or, with add_gt_as_proposals, a GT box).
	RoIs *Node
	// Valid is [R] Bool: the slot holds a sampled RoI.
	Valid *Node
	// Labels is [R] Int32: the class of a positive's GT box, num_classes (the background)
	// for a negative; any value in an empty slot.
	Labels *Node
	// GTBoxes is [R, 4]: a positive's GT box; any box elsewhere (unused).
	GTBoxes *Node
}

// Loss is mmdet 2.x's BBoxHead.loss with pos_weight -1: the softmax cross-entropy of the
// valid slots' scores cls [R, num_classes + 1] against their labels, divided by the number
// of valid slots (at least 1), and the L1 distance of the positives' deltas for their own
// class (reg [R, 4 * classes]) to the coder's encoding of their GT box, divided by the
// number of valid slots too (mmdet's avg_factor bbox_targets.size(0), the sampled RoIs);
// each times its loss_weight, with float32's eps added to the divisors as mmdet's
// weight_reduce_loss does. It also returns the accuracy of the valid slots (mmdet's acc),
// in percent.
func (h *BBoxHead) Loss(cls, reg *Node, t RoITargets) (lossCls, lossBBox, acc *Node) {
	g := cls.Graph()
	dt := cls.DType()
	nc := h.cfg.NumClasses
	r := cls.Shape().Dim(0)
	labels := ConvertDType(t.Labels, dtypes.Int32)
	weight := ConvertDType(t.Valid, dt)
	count := ReduceAllSum(weight)
	avgCls := Max(count, ScalarOne(g, dt))

	logp := LogSoftmax(cls, -1)
	onehot := OneHot(labels, nc+1, dt)
	ce := Neg(ReduceSum(Mul(logp, onehot), -1))
	lossCls = MulScalar(Div(ReduceAllSum(Mul(ce, weight)), AddScalar(avgCls, float32Eps)), h.cfg.LossCls.LossWeight)

	pos := LogicalAnd(t.Valid, LessThan(labels, Scalar(g, dtypes.Int32, nc)))
	posF := ConvertDType(pos, dt)
	pred := Reshape(reg, r, h.regClasses(), 4)
	if !h.cfg.RegClassAgnostic {
		// The deltas of each RoI's own class (the background's RoIs are masked out below).
		sel := OneHot(Min(labels, Scalar(g, dtypes.Int32, nc-1)), nc, dt) // [R, nc]
		pred = ReduceSum(Mul(pred, Reshape(sel, r, nc, 1)), 1)
	} else {
		pred = Reshape(pred, r, 4)
	}
	target := StopGradient(h.Coder.Encode(t.RoIs, ConvertDType(t.GTBoxes, dt)))
	target = Where(BroadcastToDims(Reshape(pos, r, 1), r, 4), target, ZerosLike(target)) // degenerate negatives' NaN
	l1 := Mul(Abs(Sub(pred, target)), Reshape(posF, r, 1))
	lossBBox = MulScalar(Div(ReduceAllSum(l1), AddScalar(count, float64(float32Eps))), h.cfg.LossBBox.LossWeight)

	correct := ConvertDType(Equal(ConvertDType(ArgMax(cls, -1), dtypes.Int32), labels), dt)
	acc = MulScalar(Div(ReduceAllSum(Mul(correct, weight)), avgCls), 100)
	return lossCls, lossBBox, acc
}

// float32Eps is torch.finfo(torch.float32).eps, mmdet's weight_reduce_loss's.
const float32Eps = 1.1920928955078125e-07

// GetBBoxes is mmdet 2.x's BBoxHead.get_bboxes followed by multiclass_nms, per image with
// static shapes: cls [B*P, num_classes + 1] and reg [B*P, 4 * classes] of the RoIs rois [B, P,
// 4] (roiValid [B, P]); softmax scores, each class's deltas decoded on its RoI and clipped to
// imgShape [B, 2] (h, w); the (RoI, class) pairs scoring above score_thr (strictly), greedy
// per-class NMS (BatchedNMS) and the best max_per_img, best first. The boxes are in the
// resized image's coordinates: divide by the scale factor for the original image's (mmdet's
// rescale).
func (h *BBoxHead) GetBBoxes(cls, reg, rois, roiValid, imgShape *Node, cfg *TestConfig) Detections {
	b, p := rois.Shape().Dim(0), rois.Shape().Dim(1)
	dt := cls.DType()
	g := cls.Graph()
	nc := h.NumClasses()
	scores := Slice(Softmax(cls, -1), AxisRange(), AxisRange(0, nc)) // [B*P, nc], background dropped
	rc := h.regClasses()
	boxes := Reshape(h.Coder.Decode(ConvertDType(rois, dt), Reshape(reg, b, p, 4*rc), imgShape), b, p, rc, 4)
	if rc == 1 {
		boxes = BroadcastToDims(boxes, b, p, nc, 4)
	}
	boxes = Reshape(boxes, b, p*nc, 4)
	s := Reshape(scores, b, p*nc)
	labels := Reshape(BroadcastToDims(Iota(g, shapes.Make(dtypes.Int32, 1, 1, nc), 2), b, p, nc), b, p*nc)
	valid := LogicalAnd(GreaterThan(s, Scalar(g, dt, cfg.ScoreThr)),
		Reshape(BroadcastToDims(Reshape(roiValid, b, p, 1), b, p, nc), b, p*nc))
	keep, keepValid := BatchedNMS(boxes, s, labels, valid, cfg.Nms.IoUThreshold, cfg.MaxPerImg)
	return Detections{Boxes: GatherRows(boxes, keep), Scores: GatherRows(s, keep), Labels: GatherRows(labels, keep), Valid: keepValid}
}

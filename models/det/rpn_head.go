package det

import (
	"errors"
	"fmt"

	"github.com/gomlx/gomlx/pkg/core/dtypes"
	. "github.com/gomlx/gomlx/pkg/core/graph"

	"github.com/goselfsup/goselfsup/models/nn"
	"github.com/goselfsup/goselfsup/registry"
)

// LossConfig is the loss table of a detection head, mmdet's loss_cls and loss_bbox:
// CrossEntropyLoss with use_sigmoid for the RPN's objectness, L1Loss for its deltas.
type LossConfig struct {
	Type       string  `toml:"type" doc:"CrossEntropyLoss (loss_cls) or L1Loss (loss_bbox)"`
	UseSigmoid bool    `toml:"use_sigmoid" doc:"CrossEntropyLoss: a binary cross-entropy on sigmoid scores (the RPN's)"`
	LossWeight float64 `toml:"loss_weight" doc:"the loss's weight"`
}

// RPNHeadConfig is mmdet 2.x's RPNHead on one feature map (the C4 detectors' res4) or on
// each level of a pyramid with shared weights (FPN, one anchor stride per level): a 3x3
// convolution and ReLU, then 1x1 convolutions to A objectness logits (sigmoid) and 4A
// deltas per location, A the anchor generator's anchors per location.
type RPNHeadConfig struct {
	InChannels      int           `toml:"in_channels" doc:"the feature map's channels" required:"true"`
	FeatChannels    int           `toml:"feat_channels" doc:"the channels of the 3x3 convolution"`
	AnchorGenerator registry.Spec `toml:"anchor_generator" registry:"prior_generators" doc:"the anchors (AnchorGenerator)"`
	BBoxCoder       registry.Spec `toml:"bbox_coder" registry:"bbox_coders" doc:"the deltas' coder (DeltaXYWHBBoxCoder)"`
	LossCls         LossConfig    `toml:"loss_cls" doc:"the objectness loss: CrossEntropyLoss with use_sigmoid"`
	LossBBox        LossConfig    `toml:"loss_bbox" doc:"the deltas' loss: L1Loss"`
}

func init() {
	registry.Add(registry.Heads, "RPNHead", "mmdet 2.x's region proposal head on one feature map (C4) or on every pyramid level (FPN)",
		func() *RPNHeadConfig {
			return &RPNHeadConfig{FeatChannels: 256,
				LossCls:  LossConfig{Type: "CrossEntropyLoss", UseSigmoid: true, LossWeight: 1},
				LossBBox: LossConfig{Type: "L1Loss", LossWeight: 1}}
		})
}

func (c *RPNHeadConfig) Validate() error {
	var errs []error
	if c.InChannels < 1 {
		errs = append(errs, registry.FieldErrorf("in_channels", "must be at least 1, got %d", c.InChannels))
	}
	if c.FeatChannels < 1 {
		errs = append(errs, registry.FieldErrorf("feat_channels", "must be at least 1, got %d", c.FeatChannels))
	}
	if c.AnchorGenerator.IsZero() {
		errs = append(errs, registry.FieldErrorf("anchor_generator", "is required"))
	}
	if c.BBoxCoder.IsZero() {
		errs = append(errs, registry.FieldErrorf("bbox_coder", "is required"))
	}
	if c.LossCls.Type != "CrossEntropyLoss" || !c.LossCls.UseSigmoid {
		errs = append(errs, registry.FieldErrorf("loss_cls", "only CrossEntropyLoss with use_sigmoid = true is supported (the RPN's), got %+v", c.LossCls))
	}
	if c.LossBBox.Type != "L1Loss" {
		errs = append(errs, registry.FieldErrorf("loss_bbox", "only L1Loss is supported (the C4 RPN's), got type %q", c.LossBBox.Type))
	}
	return errors.Join(errs...)
}

// RPNHead is a built RPNHead; its variables are named as mmdet's: rpn_conv, rpn_cls,
// rpn_reg, each initialised from N(0, 0.01) with a zero bias (mmdet's RPNHead init).
type RPNHead struct {
	cfg                    *RPNHeadConfig
	Anchors                *AnchorGenerator
	Coder                  *DeltaXYWHBBoxCoder
	conv, clsConv, regConv *nn.Conv2d
}

// Build builds the head in the scope of the registry.Env.
func (c *RPNHeadConfig) Build(env *registry.Env) (any, error) {
	s, err := registry.Need[*nn.Scope](env)
	if err != nil {
		return nil, err
	}
	h := &RPNHead{cfg: c}
	if h.Anchors, err = registry.Build[*AnchorGenerator](env, c.AnchorGenerator); err != nil {
		return nil, fmt.Errorf("anchor_generator: %w", err)
	}
	if h.Coder, err = registry.Build[*DeltaXYWHBBoxCoder](env, c.BBoxCoder); err != nil {
		return nil, fmt.Errorf("bbox_coder: %w", err)
	}
	a := h.Anchors.NumBaseAnchors()
	h.conv = nn.NewConv2dNormal(s.In("rpn_conv"), c.InChannels, c.FeatChannels, 3, 0.01)
	h.clsConv = nn.NewConv2dNormal(s.In("rpn_cls"), c.FeatChannels, a, 1, 0.01)
	h.regConv = nn.NewConv2dNormal(s.In("rpn_reg"), c.FeatChannels, 4*a, 1, 0.01)
	return h, nil
}

// Forward returns the objectness logits [B, H, W, A] and the deltas [B, H, W, 4A] of the
// feature map x [B, H, W, C]. Flattened to [B, H*W*A] and [B, H*W*A, 4] they follow the
// anchors' order (GridAnchors: location-major, then the base anchors), as mmdet's
// permute(0, 2, 3, 1).reshape.
func (h *RPNHead) Forward(x *Node) (cls, reg *Node) {
	y := nn.ReLU(h.conv.Forward(x))
	return h.clsConv.Forward(y), h.regConv.Forward(y)
}

// ForwardLevels is Forward on each feature map of feats (the pyramid's levels, one per
// anchor stride), with the same weights.
func (h *RPNHead) ForwardLevels(feats []*Node) (cls, reg []*Node) {
	for _, x := range feats {
		c, r := h.Forward(x)
		cls, reg = append(cls, c), append(reg, r)
	}
	return cls, reg
}

// LevelAnchors are the anchors of the levels of cls (each [B, H_l, W_l, A]), concatenated
// in level order as mmdet concatenates them: [sum H_l*W_l*A, 4] in dt, a constant.
func (h *RPNHead) LevelAnchors(cls []*Node) *Node {
	if len(cls) != h.Anchors.NumLevels() {
		panicf("RPNHead: %d feature maps, but the anchor generator has %d strides", len(cls), h.Anchors.NumLevels())
	}
	var parts []*Node
	for l, c := range cls {
		t, err := h.Anchors.Anchors(l, c.Shape().Dim(1), c.Shape().Dim(2), c.DType())
		if err != nil {
			panic(err) // the level exists and the map is not empty
		}
		parts = append(parts, ConstTensor(c.Graph(), t))
	}
	if len(parts) == 1 {
		return parts[0]
	}
	return Concatenate(parts, 0)
}

// flattenLevels concatenates the levels' cls [B, H, W, A] into [B, N] and reg [B, H, W,
// 4A] into [B, N, 4], in the anchors' order.
func flattenLevels(cls, reg []*Node) (c, r *Node) {
	var cs, rs []*Node
	for i := range cls {
		b := cls[i].Shape().Dim(0)
		cs = append(cs, Reshape(cls[i], b, -1))
		rs = append(rs, Reshape(reg[i], b, -1, 4))
	}
	if len(cs) == 1 {
		return cs[0], rs[0]
	}
	return Concatenate(cs, 1), Concatenate(rs, 1)
}

// RPNTrain is the RPN's part of a detector's train_cfg (mmdet's train_cfg.rpn), built.
type RPNTrain struct {
	Assigner *MaxIoUAssigner
	Sampler  *RandomSampler
	// AllowedBorder: anchors crossing the image by more than this many pixels take no part
	// in the targets (0 for C4); negative keeps every anchor.
	AllowedBorder float64
}

// RPNTargets are what an RPN loss was computed on, for inspection and tests.
type RPNTargets struct {
	Sample SampleResult // [B, num] slots over the anchors
	// GTInds is [B, num] Int32: the GT box of each sampled positive (0 elsewhere).
	GTInds *Node
}

// Loss is mmdet 2.x's AnchorHead.loss for the RPN (use_sigmoid, sampling) on one level:
//
//   - cls [B, H, W, A] and reg [B, H, W, 4A], Forward's outputs;
//   - anchors [H*W*A, 4], the level's GridAnchors (a constant);
//   - gtBoxes [B, G, 4] and gtValid [B, G] Bool: each image's GT boxes, padded to G;
//   - imgShape [B, 2] (h, w) of the resized images before padding, padShape [B, 2] after
//     (nil: imgShape), for the anchors' valid flags (allowed_border);
//   - keys [B, H*W*A] integers in [0, 2^KeyBits): the sampler's random keys (SampleKeys).
//
// Per image the valid anchors are assigned (MaxIoUAssigner on their IoU with the GT) and
// sampled (RandomSampler: Num anchors, positives first); the objectness loss is the binary
// cross-entropy of the sampled anchors (target 1 for positives, 0 for negatives), and the
// deltas' loss the L1 distance of the positives' deltas to the coder's encoding of their
// GT box. Both are summed over the batch and divided by the number of sampled anchors of
// the whole batch (mmdet's avg_factor num_total_pos + num_total_neg, plus float32's eps as
// weight_reduce_loss), then weighted by loss_weight.
func (h *RPNHead) Loss(cls, reg, anchors, gtBoxes, gtValid, imgShape, padShape, keys *Node, cfg *RPNTrain) (lossCls, lossBBox *Node, t RPNTargets) {
	if cls.Rank() != 4 {
		panicf("RPNHead.Loss: cls must be [B, H, W, A], got %s", cls.Shape())
	}
	fh, fw := cls.Shape().Dim(1), cls.Shape().Dim(2)
	anchors = ConvertDType(anchors, cls.DType())
	valid := h.Anchors.ValidFlags(anchors, 0, fh, fw, padShape, imgShape, cfg.AllowedBorder) // [B, N]
	c, r := flattenLevels([]*Node{cls}, []*Node{reg})
	return h.loss(c, r, anchors, valid, gtBoxes, gtValid, keys, cfg)
}

// LossLevels is Loss over several levels (FPN), as mmdet 2.x's AnchorHead.loss: the levels'
// cls [B, H_l, W_l, A] and reg [B, H_l, W_l, 4A] (ForwardLevels), their anchors
// (LevelAnchors) and valid flags concatenated in level order, then one assignment and one
// sample per image over all of them, keys [B, sum H_l*W_l*A]; the losses as Loss's (mmdet's
// per-level losses share one avg_factor, so their sum is the loss of the concatenation).
func (h *RPNHead) LossLevels(cls, reg []*Node, gtBoxes, gtValid, imgShape, padShape, keys *Node, cfg *RPNTrain) (lossCls, lossBBox *Node, t RPNTargets) {
	if len(cls) == 1 {
		return h.Loss(cls[0], reg[0], h.LevelAnchors(cls), gtBoxes, gtValid, imgShape, padShape, keys, cfg)
	}
	dt := cls[0].DType()
	var anchors, valid []*Node
	for l, c := range cls {
		t, err := h.Anchors.Anchors(l, c.Shape().Dim(1), c.Shape().Dim(2), dt)
		if err != nil {
			panic(err)
		}
		a := ConstTensor(c.Graph(), t)
		anchors = append(anchors, a)
		valid = append(valid, h.Anchors.ValidFlags(a, l, c.Shape().Dim(1), c.Shape().Dim(2), padShape, imgShape, cfg.AllowedBorder))
	}
	c, r := flattenLevels(cls, reg)
	return h.loss(c, r, Concatenate(anchors, 0), Concatenate(valid, 1), gtBoxes, gtValid, keys, cfg)
}

// loss is Loss on the flattened scores cls [B, N], deltas reg [B, N, 4], anchors [N, 4] and
// their valid flags [B, N].
func (h *RPNHead) loss(cls, reg, anchors, valid, gtBoxes, gtValid, keys *Node, cfg *RPNTrain) (lossCls, lossBBox *Node, t RPNTargets) {
	b, n := cls.Shape().Dim(0), cls.Shape().Dim(1)
	dt := cls.DType()
	anchorsB := BroadcastToDims(Reshape(anchors, 1, n, 4), b, n, 4)
	gt := ConvertDType(gtBoxes, dt)
	iou := BoxIoU(anchorsB, gt) // [B, N, G]
	assign := cfg.Assigner.Assign(iou, valid, gtValid, nil)
	s := cfg.Sampler.SampleWithKeys(keys, assign.GTInds)

	g := cls.Graph()
	weight := ConvertDType(s.Valid, dt) // [B, num]
	pos := ConvertDType(s.Positive, dt)
	avg := AddScalar(ReduceAllSum(weight), float32Eps)

	logits := GatherRows(cls, s.Indices) // [B, num]
	// binary_cross_entropy_with_logits: max(x, 0) - x t + log(1 + exp(-|x|)).
	bce := Add(Sub(Max(logits, ZerosLike(logits)), Mul(logits, pos)), Log1P(Exp(Neg(Abs(logits)))))
	lossCls = MulScalar(Div(ReduceAllSum(Mul(bce, weight)), avg), h.cfg.LossCls.LossWeight)

	gtInds := Max(GatherRows(assign.GTInds, s.Indices), ScalarZero(g, dtypes.Int32)) // [B, num]
	target := StopGradient(h.Coder.Encode(GatherRows(anchorsB, s.Indices), GatherRows(gt, gtInds)))
	pred := GatherRows(reg, s.Indices) // [B, num, 4]
	l1 := Mul(Abs(Sub(pred, target)), Reshape(pos, b, s.Indices.Shape().Dim(1), 1))
	lossBBox = MulScalar(Div(ReduceAllSum(l1), avg), h.cfg.LossBBox.LossWeight)
	return lossCls, lossBBox, RPNTargets{Sample: s, GTInds: Where(s.Positive, gtInds, ZerosLike(gtInds))}
}

// NMSConfig is mmcv's nms table: nms = { type = "nms", iou_threshold = 0.7 }.
type NMSConfig struct {
	Type         string  `toml:"type" doc:"nms (the only kind supported)"`
	IoUThreshold float64 `toml:"iou_threshold" doc:"a box is suppressed by a kept one whose IoU with it is above this"`
}

// RPNProposalConfig is mmdet 2.x's proposal settings of the RPN: train_cfg.rpn_proposal and
// test_cfg.rpn (12,000 / 2,000 in training and 6,000 / 1,000 at test for the C4 detectors).
type RPNProposalConfig struct {
	NmsPre      int       `toml:"nms_pre" doc:"the highest-scoring anchors kept before NMS (0: all)"`
	MaxPerImg   int       `toml:"max_per_img" doc:"the proposals kept after NMS, per image"`
	Nms         NMSConfig `toml:"nms" doc:"the NMS of the proposals"`
	MinBBoxSize float64   `toml:"min_bbox_size" doc:"proposals not wider and higher than this are dropped (0: the empty ones); negative keeps all"`
}

// Validate checks the settings.
func (c *RPNProposalConfig) Validate() error {
	var errs []error
	if c.NmsPre < 0 {
		errs = append(errs, registry.FieldErrorf("nms_pre", "must not be negative, got %d", c.NmsPre))
	}
	if c.MaxPerImg < 1 {
		errs = append(errs, registry.FieldErrorf("max_per_img", "must be at least 1, got %d", c.MaxPerImg))
	}
	if c.Nms.Type != "nms" {
		errs = append(errs, registry.FieldErrorf("nms", "type must be nms, got %q", c.Nms.Type))
	}
	if c.Nms.IoUThreshold <= 0 || c.Nms.IoUThreshold > 1 {
		errs = append(errs, registry.FieldErrorf("nms", "iou_threshold must be in (0, 1], got %v", c.Nms.IoUThreshold))
	}
	return errors.Join(errs...)
}

// Proposals is mmdet 2.x's RPNHead.get_bboxes on one level, per image, with static shapes:
// the objectness scores (sigmoid of cls [B, H, W, A]), the nms_pre highest of them
// (TopKMask), their anchors [H*W*A, 4] decoded with reg [B, H, W, 4A] and clipped to each
// image's imgShape [B, 2] (h, w), the proposals wider and higher than min_bbox_size, greedy
// NMS, and the first max_per_img kept, in descending score order: boxes [B, max_per_img, 4],
// scores [B, max_per_img] and valid [B, max_per_img] Bool (fewer proposals leave invalid
// slots). The proposals carry no gradient, as mmdet detaches them.
func (h *RPNHead) Proposals(cls, reg, anchors, imgShape *Node, cfg *RPNProposalConfig) (boxes, scores, valid *Node) {
	b, fh, fw, a := cls.Shape().Dim(0), cls.Shape().Dim(1), cls.Shape().Dim(2), cls.Shape().Dim(3)
	n := fh * fw * a
	dt := cls.DType()
	s := Sigmoid(StopGradient(Reshape(cls, b, n)))
	anchorsB := BroadcastToDims(Reshape(ConvertDType(anchors, dt), 1, n, 4), b, n, 4)
	deltas := StopGradient(Reshape(reg, b, n, 4))
	cand := boolConst(cls.Graph(), true, b, n)
	if cfg.NmsPre > 0 && cfg.NmsPre < n {
		// The nms_pre best, gathered into nms_pre slots (in anchor order, so NMS breaks
		// ties between equal scores by the anchor's index as before): decoding and NMS
		// then run on nms_pre boxes instead of every anchor.
		idx, ok := TopK(s, nil, cfg.NmsPre)
		s, anchorsB, deltas, cand = GatherRows(s, idx), GatherRows(anchorsB, idx), GatherRows(deltas, idx), ok
	}
	props := h.Coder.Decode(anchorsB, deltas, ConvertDType(imgShape, dt))
	if cfg.MinBBoxSize >= 0 {
		x1, y1, x2, y2 := cornerCoords(props)
		big := LogicalAnd(GreaterThan(Sub(x2, x1), Scalar(cls.Graph(), dt, cfg.MinBBoxSize)),
			GreaterThan(Sub(y2, y1), Scalar(cls.Graph(), dt, cfg.MinBBoxSize)))
		cand = LogicalAnd(cand, big)
	}
	keep, keepValid := NMS(props, s, cand, cfg.Nms.IoUThreshold, cfg.MaxPerImg)
	return StopGradient(GatherRows(props, keep)), GatherRows(s, keep), keepValid
}

// ProposalsLevels is mmdet 2.x's RPNHead._get_bboxes_single over several levels (FPN), per
// image with static shapes: for each level l of cls [B, H_l, W_l, A] and reg [B, H_l, W_l,
// 4A], the sigmoid scores and their nms_pre best (TopK; all when the level has fewer) with
// their anchors and deltas; then, over all levels together, the deltas decoded on their
// anchors and clipped to imgShape [B, 2] (h, w), the proposals not wider and higher than
// min_bbox_size dropped, NMS within each level (batched_nms with the level ids), and the
// first max_per_img kept, in descending score order over all levels (mmdet's batched_nms
// keep, sorted by score, cut to max_per_img). Outputs as Proposals. One level is Proposals.
func (h *RPNHead) ProposalsLevels(cls, reg []*Node, imgShape *Node, cfg *RPNProposalConfig) (boxes, scores, valid *Node) {
	if len(cls) != len(reg) || len(cls) == 0 {
		panicf("RPNHead.ProposalsLevels: %d score maps and %d delta maps", len(cls), len(reg))
	}
	if len(cls) == 1 {
		return h.Proposals(cls[0], reg[0], h.LevelAnchors(cls), imgShape, cfg)
	}
	g := cls[0].Graph()
	dt := cls[0].DType()
	anchorsAll := h.LevelAnchors(cls)
	var ss, as, ds, oks, ids []*Node
	off := 0
	for l := range cls {
		b, fh, fw, a := cls[l].Shape().Dim(0), cls[l].Shape().Dim(1), cls[l].Shape().Dim(2), cls[l].Shape().Dim(3)
		n := fh * fw * a
		s := Sigmoid(StopGradient(Reshape(cls[l], b, n)))
		anchors := Slice(anchorsAll, AxisRange(off, off+n), AxisRange())
		off += n
		anchorsB := BroadcastToDims(Reshape(ConvertDType(anchors, dt), 1, n, 4), b, n, 4)
		deltas := StopGradient(Reshape(reg[l], b, n, 4))
		ok := boolConst(g, true, b, n)
		if cfg.NmsPre > 0 && cfg.NmsPre < n {
			idx, okK := TopK(s, nil, cfg.NmsPre)
			s, anchorsB, deltas, ok = GatherRows(s, idx), GatherRows(anchorsB, idx), GatherRows(deltas, idx), okK
		}
		k := s.Shape().Dim(1)
		ss, as, ds, oks = append(ss, s), append(as, anchorsB), append(ds, deltas), append(oks, ok)
		ids = append(ids, Scalar(g, dtypes.Int32, l))
		ids[len(ids)-1] = BroadcastToDims(ids[len(ids)-1], b, k)
	}
	s, anchorsB, deltas, cand, levels := Concatenate(ss, 1), Concatenate(as, 1), Concatenate(ds, 1), Concatenate(oks, 1), Concatenate(ids, 1)
	props := h.Coder.Decode(anchorsB, deltas, ConvertDType(imgShape, dt))
	if cfg.MinBBoxSize >= 0 {
		x1, y1, x2, y2 := cornerCoords(props)
		big := LogicalAnd(GreaterThan(Sub(x2, x1), Scalar(g, dt, cfg.MinBBoxSize)),
			GreaterThan(Sub(y2, y1), Scalar(g, dt, cfg.MinBBoxSize)))
		cand = LogicalAnd(cand, big)
	}
	keep, keepValid := BatchedNMS(props, s, levels, cand, cfg.Nms.IoUThreshold, cfg.MaxPerImg)
	return StopGradient(GatherRows(props, keep)), GatherRows(s, keep), keepValid
}

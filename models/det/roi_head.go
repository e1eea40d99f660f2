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

// SharedHead runs every RoI's features through the layers shared by the RoI head's branches
// (res5 for the C4 detectors): a component of registry.SharedHeads, such as models'
// ResLayerExtraNorm.
type SharedHead interface {
	Forward(x *Node, train bool) *Node
	OutChannels() int
}

// BoxHead is a RoI head's box branch (a component of registry.Heads): BBoxHead (the C4
// head) or a ConvFCBBoxHead (Shared4Conv1FCBBoxHead, Shared2FCBBoxHead).
type BoxHead interface {
	// Forward returns the class scores [R, num_classes + 1] and the deltas [R, 4 * classes]
	// of the RoI features x [R, S, S, C]; train selects batch statistics in its BNs.
	Forward(x *Node, train bool) (cls, reg *Node)
	// Loss is mmdet 2.x's BBoxHead.loss (see BBoxHead.Loss).
	Loss(cls, reg *Node, t RoITargets) (lossCls, lossBBox, acc *Node)
	// GetBBoxes is mmdet 2.x's get_bboxes and multiclass_nms (see BBoxHead.GetBBoxes).
	GetBBoxes(cls, reg, rois, roiValid, imgShape *Node, cfg *TestConfig) Detections
	// NumClasses is the number of object classes, the background not counted.
	NumClasses() int
	// InChannels is the channels of the RoI features it takes.
	InChannels() int
}

// MaskHead is a RoI head's mask branch (a component of registry.Heads): FCNMaskHead.
type MaskHead interface {
	// Forward returns the mask logits [R, S, S, classes] of the RoI features x [R, s, s, C].
	Forward(x *Node, train bool) *Node
	// Loss scores the logits of R RoIs against their targets [R, S, S] on their labels'
	// channels, over the RoIs of weight 1 (see FCNMaskHead.Loss).
	Loss(pred, targets, labels, weight *Node) *Node
	// Probs returns the probabilities [R, S, S] of the labels' channels.
	Probs(pred, labels *Node) *Node
	// MaskSize is S, the side of the masks.
	MaskSize() int
	// NumClasses is the number of object classes.
	NumClasses() int
	// InChannels is the channels of the RoI features it takes.
	InChannels() int
}

// StandardRoIHeadConfig is mmdet 2.x's StandardRoIHead: RoIAlign on the feature map (C4)
// or the pyramid level of each RoI (FPN), an optional shared head (res5 for the C4
// detectors, none for FPN), the box head, and for Mask R-CNN a mask branch (its own
// RoIAlign and the mask head).
type StandardRoIHeadConfig struct {
	BBoxRoIExtractor RoIExtractorConfig `toml:"bbox_roi_extractor" doc:"the RoI features (SingleRoIExtractor with RoIAlign)"`
	SharedHead       registry.Spec      `toml:"shared_head" registry:"shared_heads" doc:"the layers every RoI goes through (ResLayerExtraNorm: res5 and a BN, C4); none for FPN"`
	BBoxHead         registry.Spec      `toml:"bbox_head" registry:"heads" doc:"the box head (BBoxHead, Shared4Conv1FCBBoxHead, Shared2FCBBoxHead)"`
	MaskRoIExtractor RoIExtractorConfig `toml:"mask_roi_extractor" doc:"Mask R-CNN: the mask branch's RoI features (SingleRoIExtractor, RoIAlign 14x14)"`
	MaskHead         registry.Spec      `toml:"mask_head" registry:"heads" doc:"Mask R-CNN: the mask head (FCNMaskHead); none for box detectors"`
}

func init() {
	registry.Add(registry.Heads, "StandardRoIHead", "mmdet 2.x's RoI head: RoIAlign (one map or FPN levels), an optional shared head (res5 for C4) and a box head",
		func() *StandardRoIHeadConfig {
			t := true
			return &StandardRoIHeadConfig{BBoxRoIExtractor: RoIExtractorConfig{Type: "SingleRoIExtractor",
				RoILayer: RoILayerConfig{Type: "RoIAlign", OutputSize: 14, Aligned: &t, MaxGrid: 4}, FeatmapStrides: []int{16}, FinestScale: 56},
				MaskRoIExtractor: RoIExtractorConfig{RoILayer: RoILayerConfig{Aligned: &t}, FinestScale: 56}}
		})
}

func (c *StandardRoIHeadConfig) Validate() error {
	var errs []error
	if err := c.BBoxRoIExtractor.Validate(); err != nil {
		errs = append(errs, fmt.Errorf("bbox_roi_extractor: %w", err))
	}
	if c.BBoxHead.IsZero() {
		errs = append(errs, registry.FieldErrorf("bbox_head", "is required"))
	}
	if !c.MaskHead.IsZero() {
		if err := c.MaskRoIExtractor.Validate(); err != nil {
			errs = append(errs, fmt.Errorf("mask_roi_extractor: %w", err))
		}
		if !c.SharedHead.IsZero() {
			errs = append(errs, registry.FieldErrorf("mask_head", "a mask branch after a shared head (mmdet's share_roi_extractor) is not supported"))
		}
	}
	return errors.Join(errs...)
}

// StandardRoIHead is a built StandardRoIHead; its variables are mmdet's: shared_head.* (if
// any), bbox_head.* and mask_head.* (if any).
type StandardRoIHead struct {
	cfg           *StandardRoIHeadConfig
	Extractor     *RoIExtractor
	Shared        SharedHead // nil without a shared head
	Box           BoxHead
	MaskExtractor *RoIExtractor // nil without a mask branch
	Mask          MaskHead      // nil without a mask branch
}

// Build builds the head in the scope of the registry.Env.
func (c *StandardRoIHeadConfig) Build(env *registry.Env) (any, error) {
	s, err := registry.Need[*nn.Scope](env)
	if err != nil {
		return nil, err
	}
	h := &StandardRoIHead{cfg: c}
	if h.Extractor, err = NewRoIExtractor(c.BBoxRoIExtractor); err != nil {
		return nil, fmt.Errorf("bbox_roi_extractor: %w", err)
	}
	if !c.SharedHead.IsZero() {
		if h.Shared, err = registry.Build[SharedHead](registry.With(env, s.In("shared_head")), c.SharedHead); err != nil {
			return nil, fmt.Errorf("shared_head: %w", err)
		}
	}
	if h.Box, err = registry.Build[BoxHead](registry.With(env, s.In("bbox_head")), c.BBoxHead); err != nil {
		return nil, fmt.Errorf("bbox_head: %w", err)
	}
	if h.Shared != nil && h.Shared.OutChannels() != h.Box.InChannels() {
		return nil, registry.FieldErrorf("bbox_head", "in_channels %d, but the shared head gives %d", h.Box.InChannels(), h.Shared.OutChannels())
	}
	if h.Shared == nil && c.BBoxRoIExtractor.OutChannels != h.Box.InChannels() {
		return nil, registry.FieldErrorf("bbox_head", "in_channels %d, but bbox_roi_extractor.out_channels is %d", h.Box.InChannels(), c.BBoxRoIExtractor.OutChannels)
	}
	if !c.MaskHead.IsZero() {
		if h.MaskExtractor, err = NewRoIExtractor(c.MaskRoIExtractor); err != nil {
			return nil, fmt.Errorf("mask_roi_extractor: %w", err)
		}
		if h.Mask, err = registry.Build[MaskHead](registry.With(env, s.In("mask_head")), c.MaskHead); err != nil {
			return nil, fmt.Errorf("mask_head: %w", err)
		}
		if h.Mask.NumClasses() != h.Box.NumClasses() {
			return nil, registry.FieldErrorf("mask_head", "num_classes %d, but the box head has %d", h.Mask.NumClasses(), h.Box.NumClasses())
		}
		if h.Mask.InChannels() != c.MaskRoIExtractor.OutChannels {
			return nil, registry.FieldErrorf("mask_head", "in_channels %d, but mask_roi_extractor.out_channels is %d", h.Mask.InChannels(), c.MaskRoIExtractor.OutChannels)
		}
	}
	return h, nil
}

// RCNNTrain is the RoI head's part of a detector's train_cfg (mmdet's train_cfg.rcnn), built.
type RCNNTrain struct {
	Assigner *MaxIoUAssigner
	Sampler  *RandomSampler
	// MaskSize is the side of the mask targets (mmdet's mask_size, 28) and MaskMaxGrid the
	// bound of their RoIAlign's adaptive grid (MaskTargets); the mask branch's only.
	MaskSize, MaskMaxGrid int
}

// features pools the RoIs [B, K, 4] of each image from feats (one map [B, H, W, C], or the
// pyramid's levels) and runs them through the shared head, if any: [B*K, S', S', C'].
func (h *StandardRoIHead) features(feats []*Node, rois *Node, train bool) *Node {
	pooled := h.Extractor.Extract(feats, rois)
	if h.Shared == nil {
		return pooled
	}
	return h.Shared.Forward(pooled, train)
}

// Loss is Losses' box branch, without GT masks.
func (h *StandardRoIHead) Loss(feats []*Node, proposals, proposalValid, gtBoxes, gtLabels, gtValid, keys *Node, cfg *RCNNTrain) (lossCls, lossBBox, acc *Node) {
	l := h.Losses(feats, proposals, proposalValid, RoIGroundTruth{Boxes: gtBoxes, Labels: gtLabels, Valid: gtValid}, keys, cfg)
	return l.Cls, l.BBox, l.Acc
}

// RoIGroundTruth is a batch's ground truth as the RoI head trains on it: boxes [B, G, 4],
// labels [B, G], validity [B, G], and for a mask branch the instance masks [B, G, H, W]
// (uint8, 1 inside, on the batch's padded canvas).
type RoIGroundTruth struct {
	Boxes, Labels, Valid, Masks *Node
}

// RoILosses are the RoI head's losses: the box branch's (and its accuracy, only logged)
// and the mask branch's (nil without one).
type RoILosses struct {
	Cls, BBox, Acc, Mask *Node
}

// Losses is mmdet 2.x's StandardRoIHead.forward_train: per image, the proposals [B, P, 4]
// (proposalValid [B, P]) are assigned to the GT boxes, the GT boxes prepended
// (add_gt_as_proposals) and Num RoIs sampled with keys [B, G + P] (SampleKeys); their
// features are pooled and run through the shared and box heads, and the box head's Loss
// scores them.
//
// With a mask branch (Mask R-CNN, _mask_forward_train), the positive RoIs are pooled by the
// mask extractor and scored by the mask head against their GT masks cut out by MaskTargets
// (mask_size, RoIAlign of the bitmap). The sampler puts the positives first and takes at
// most NumExpectedPos of them, so the mask branch runs on that many slots per image
// (mmdet: the positives alone, a number that varies), weighted by whether each holds a
// positive. The targets are cut from the batch's canvas: mmdet cuts them from each image's
// own padded bitmap, which differs only within half a pixel of the edge of an image that
// fills its padding exactly yet is smaller than the batch's canvas.
func (h *StandardRoIHead) Losses(feats []*Node, proposals, proposalValid *Node, gt RoIGroundTruth, keys *Node, cfg *RCNNTrain) RoILosses {
	dt := feats[0].DType()
	props := ConvertDType(StopGradient(proposals), dt)
	gtBoxes := ConvertDType(gt.Boxes, dt)
	assign := cfg.Assigner.Assign(BoxIoU(props, gtBoxes), proposalValid, gt.Valid, gt.Labels)
	boxes, assign, _ := cfg.Sampler.Prepare(props, gtBoxes, gt.Valid, gt.Labels, assign)
	s := cfg.Sampler.SampleWithKeys(keys, assign.GTInds)
	b, num := s.Indices.Shape().Dim(0), s.Indices.Shape().Dim(1)
	rois := GatherRows(boxes, s.Indices) // [B, num, 4]
	g := feats[0].Graph()
	nc := h.Box.NumClasses()
	labels := Where(s.Positive, GatherRows(assign.Labels, s.Indices), Scalar(g, dtypes.Int32, nc))
	gtInds := Max(GatherRows(assign.GTInds, s.Indices), ScalarZero(g, dtypes.Int32))
	t := RoITargets{RoIs: Reshape(rois, b*num, 4), Valid: Reshape(s.Valid, b*num), Labels: Reshape(labels, b*num),
		GTBoxes: Reshape(GatherRows(gtBoxes, gtInds), b*num, 4)}
	cls, reg := h.Box.Forward(h.features(feats, rois, true), true)
	var l RoILosses
	l.Cls, l.BBox, l.Acc = h.Box.Loss(cls, reg, t)
	if h.Mask == nil {
		return l
	}
	if gt.Masks == nil {
		panic("StandardRoIHead: a mask branch without GT masks")
	}
	npos := min(cfg.Sampler.NumExpectedPos(), num)
	first := func(x *Node) *Node { return Slice(x, AxisRange(), AxisRange(0, npos)) }
	mrois := Reshape(first(rois), b*npos, 4)
	pred := h.Mask.Forward(h.MaskExtractor.Extract(feats, first(rois)), true)
	img := Reshape(Iota(g, shapes.Make(dtypes.Int32, b, npos), 0), b*npos)
	d := gt.Masks.Shape().Dimensions
	canvas := BroadcastToDims(Const(g, [][]int32{{int32(d[2]), int32(d[3])}}), b, 2)
	targets := MaskTargets(mrois, img, Reshape(first(gtInds), b*npos), gt.Masks, canvas, cfg.MaskSize, cfg.MaskMaxGrid)
	l.Mask = h.Mask.Loss(pred, targets, Reshape(first(labels), b*npos), Reshape(first(s.Positive), b*npos))
	return l
}

// TestConfig is mmdet 2.x's test_cfg.rcnn: score_thr, nms and max_per_img.
type TestConfig struct {
	ScoreThr  float64   `toml:"score_thr" doc:"detections must score above this"`
	Nms       NMSConfig `toml:"nms" doc:"the per-class NMS of the detections"`
	MaxPerImg int       `toml:"max_per_img" doc:"the detections kept per image"`
	// MaskThrBinary is Mask R-CNN's threshold of the pasted mask probabilities; the box
	// branch does not read it.
	MaskThrBinary float64 `toml:"mask_thr_binary" doc:"Mask R-CNN: masks are the pasted probabilities at or above this (0.5); unused by the box branch"`
}

// Validate checks the settings.
func (c *TestConfig) Validate() error {
	var errs []error
	if c.MaxPerImg < 1 {
		errs = append(errs, registry.FieldErrorf("max_per_img", "must be at least 1, got %d", c.MaxPerImg))
	}
	if c.Nms.Type != "nms" || c.Nms.IoUThreshold <= 0 || c.Nms.IoUThreshold > 1 {
		errs = append(errs, registry.FieldErrorf("nms", "must be { type = \"nms\", iou_threshold in (0, 1] }, got %+v", c.Nms))
	}
	return errors.Join(errs...)
}

// Detections are a batch's detections as static slots, best first.
type Detections struct {
	Boxes  *Node // [B, max_per_img, 4] in the resized image's coordinates
	Scores *Node // [B, max_per_img]
	Labels *Node // [B, max_per_img] Int32
	Valid  *Node // [B, max_per_img] Bool
}

// Predict is mmdet 2.x's StandardRoIHead.simple_test of the box branch: the proposals' [B,
// P, 4] (proposalValid [B, P]) features through the shared and box heads, then the box
// head's GetBBoxes with imgShape [B, 2] (h, w) and cfg.
func (h *StandardRoIHead) Predict(feats []*Node, proposals, proposalValid, imgShape *Node, cfg *TestConfig) Detections {
	props := ConvertDType(proposals, feats[0].DType())
	cls, reg := h.Box.Forward(h.features(feats, props, false), false)
	return h.Box.GetBBoxes(cls, reg, props, proposalValid, imgShape, cfg)
}

// PredictMasks is mmdet 2.x's simple_test_mask in the graph: the detections' boxes [B, K,
// 4] (in the resized images) pooled by the mask extractor, the mask head's logits, and the
// probabilities of each detection's class, [B, K, S, S]. Pasting them into the images
// (PasteMask) is the host's part.
func (h *StandardRoIHead) PredictMasks(feats []*Node, d Detections) *Node {
	if h.Mask == nil {
		panic("StandardRoIHead: PredictMasks without a mask head")
	}
	b, k := d.Boxes.Shape().Dim(0), d.Boxes.Shape().Dim(1)
	boxes := StopGradient(ConvertDType(d.Boxes, feats[0].DType()))
	pred := h.Mask.Forward(h.MaskExtractor.Extract(feats, boxes), false)
	s := h.Mask.MaskSize()
	return Reshape(h.Mask.Probs(pred, Reshape(d.Labels, b*k)), b, k, s, s)
}

package det

import (
	"errors"
	"fmt"

	"github.com/gomlx/gomlx/pkg/core/dtypes"
	. "github.com/gomlx/gomlx/pkg/core/graph"

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

// StandardRoIHeadConfig is mmdet 2.x's StandardRoIHead's box branch: RoIAlign on the
// feature map (C4) or the pyramid level of each RoI (FPN), an optional shared head (res5
// for the C4 detectors, none for FPN), the box head.
type StandardRoIHeadConfig struct {
	BBoxRoIExtractor RoIExtractorConfig `toml:"bbox_roi_extractor" doc:"the RoI features (SingleRoIExtractor with RoIAlign)"`
	SharedHead       registry.Spec      `toml:"shared_head" registry:"shared_heads" doc:"the layers every RoI goes through (ResLayerExtraNorm: res5 and a BN, C4); none for FPN"`
	BBoxHead         registry.Spec      `toml:"bbox_head" registry:"heads" doc:"the box head (BBoxHead, Shared4Conv1FCBBoxHead, Shared2FCBBoxHead)"`
}

func init() {
	registry.Add(registry.Heads, "StandardRoIHead", "mmdet 2.x's RoI head: RoIAlign (one map or FPN levels), an optional shared head (res5 for C4) and a box head",
		func() *StandardRoIHeadConfig {
			t := true
			return &StandardRoIHeadConfig{BBoxRoIExtractor: RoIExtractorConfig{Type: "SingleRoIExtractor",
				RoILayer: RoILayerConfig{Type: "RoIAlign", OutputSize: 14, Aligned: &t, MaxGrid: 4}, FeatmapStrides: []int{16}, FinestScale: 56}}
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
	return errors.Join(errs...)
}

// StandardRoIHead is a built StandardRoIHead; its variables are mmdet's: shared_head.* (if
// any) and bbox_head.*.
type StandardRoIHead struct {
	cfg       *StandardRoIHeadConfig
	Extractor *RoIExtractor
	Shared    SharedHead // nil without a shared head
	Box       BoxHead
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
	return h, nil
}

// RCNNTrain is the RoI head's part of a detector's train_cfg (mmdet's train_cfg.rcnn), built.
type RCNNTrain struct {
	Assigner *MaxIoUAssigner
	Sampler  *RandomSampler
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

// Loss is mmdet 2.x's StandardRoIHead.forward_train with the box branch: per image, the
// proposals [B, P, 4] (proposalValid [B, P]) are assigned to the GT boxes [B, G, 4] (gtLabels
// [B, G], gtValid [B, G]), the GT boxes prepended (add_gt_as_proposals) and Num RoIs sampled
// with keys [B, G + P] (SampleKeys); their features are pooled and run through the shared and
// box heads, and BBoxHead.Loss scores them against the batch's targets.
func (h *StandardRoIHead) Loss(feats []*Node, proposals, proposalValid, gtBoxes, gtLabels, gtValid, keys *Node, cfg *RCNNTrain) (lossCls, lossBBox, acc *Node) {
	dt := feats[0].DType()
	props := ConvertDType(StopGradient(proposals), dt)
	gt := ConvertDType(gtBoxes, dt)
	assign := cfg.Assigner.Assign(BoxIoU(props, gt), proposalValid, gtValid, gtLabels)
	boxes, assign, _ := cfg.Sampler.Prepare(props, gt, gtValid, gtLabels, assign)
	s := cfg.Sampler.SampleWithKeys(keys, assign.GTInds)
	b, num := s.Indices.Shape().Dim(0), s.Indices.Shape().Dim(1)
	rois := GatherRows(boxes, s.Indices) // [B, num, 4]
	g := feats[0].Graph()
	nc := h.Box.NumClasses()
	labels := Where(s.Positive, GatherRows(assign.Labels, s.Indices), Scalar(g, dtypes.Int32, nc))
	gtInds := Max(GatherRows(assign.GTInds, s.Indices), ScalarZero(g, dtypes.Int32))
	t := RoITargets{RoIs: Reshape(rois, b*num, 4), Valid: Reshape(s.Valid, b*num), Labels: Reshape(labels, b*num),
		GTBoxes: Reshape(GatherRows(gt, gtInds), b*num, 4)}
	cls, reg := h.Box.Forward(h.features(feats, rois, true), true)
	return h.Box.Loss(cls, reg, t)
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

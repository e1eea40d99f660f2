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

// RoILayerConfig is mmcv's roi_layer table: RoIAlign (aligned, mmcv's default).
type RoILayerConfig struct {
	Type          string `toml:"type" doc:"RoIAlign (the only kind supported)"`
	OutputSize    int    `toml:"output_size" doc:"the side of each RoI's features"`
	SamplingRatio int    `toml:"sampling_ratio" doc:"samples per bin and axis; 0: the adaptive ceil(roi / output_size)"`
	Aligned       *bool  `toml:"aligned" doc:"shift the sampling grid by half a pixel (mmcv's default true)"`
	// MaxGrid bounds the adaptive grid of sampling_ratio = 0: exact for RoIs up to
	// max_grid * output_size feature pixels a side (RoIAlign). goselfsup's own key.
	MaxGrid int `toml:"max_grid" doc:"sampling_ratio 0: the adaptive grid is exact up to this many samples per bin and axis, clamped beyond; goselfsup's own key"`
}

// RoIExtractorConfig is mmdet's SingleRoIExtractor on one feature map (C4).
type RoIExtractorConfig struct {
	Type           string         `toml:"type" doc:"SingleRoIExtractor"`
	RoILayer       RoILayerConfig `toml:"roi_layer" doc:"the RoI pooling"`
	OutChannels    int            `toml:"out_channels" doc:"the feature map's channels"`
	FeatmapStrides []int          `toml:"featmap_strides" doc:"the feature map's stride (one map)"`
}

// StandardRoIHeadConfig is mmdet 2.x's StandardRoIHead with a shared head, as the C4
// detectors use it: RoIAlign on the feature map, the shared head (res5), the box head.
type StandardRoIHeadConfig struct {
	BBoxRoIExtractor RoIExtractorConfig `toml:"bbox_roi_extractor" doc:"the RoI features (SingleRoIExtractor with RoIAlign)"`
	SharedHead       registry.Spec      `toml:"shared_head" registry:"shared_heads" doc:"the layers every RoI goes through (ResLayerExtraNorm: res5 and a BN)"`
	BBoxHead         registry.Spec      `toml:"bbox_head" registry:"heads" doc:"the box head (BBoxHead)"`
}

func init() {
	registry.Add(registry.Heads, "StandardRoIHead", "mmdet 2.x's RoI head: RoIAlign, a shared head (res5 for C4) and a box head",
		func() *StandardRoIHeadConfig {
			t := true
			return &StandardRoIHeadConfig{BBoxRoIExtractor: RoIExtractorConfig{Type: "SingleRoIExtractor",
				RoILayer: RoILayerConfig{Type: "RoIAlign", OutputSize: 14, Aligned: &t, MaxGrid: 4}, FeatmapStrides: []int{16}}}
		})
}

func (c *StandardRoIHeadConfig) Validate() error {
	var errs []error
	e := c.BBoxRoIExtractor
	if e.Type != "SingleRoIExtractor" {
		errs = append(errs, registry.FieldErrorf("bbox_roi_extractor", "type must be SingleRoIExtractor, got %q", e.Type))
	}
	if e.RoILayer.Type != "RoIAlign" || e.RoILayer.OutputSize < 1 || e.RoILayer.SamplingRatio < 0 || e.RoILayer.MaxGrid < 1 {
		errs = append(errs, registry.FieldErrorf("bbox_roi_extractor", "roi_layer must be a RoIAlign with output_size >= 1, sampling_ratio >= 0 and max_grid >= 1, got %+v", e.RoILayer))
	}
	if len(e.FeatmapStrides) != 1 || e.FeatmapStrides[0] < 1 {
		errs = append(errs, registry.FieldErrorf("bbox_roi_extractor", "featmap_strides must hold one stride (the C4 feature map), got %v", e.FeatmapStrides))
	}
	if c.SharedHead.IsZero() {
		errs = append(errs, registry.FieldErrorf("shared_head", "is required (the C4 RoI head)"))
	}
	if c.BBoxHead.IsZero() {
		errs = append(errs, registry.FieldErrorf("bbox_head", "is required"))
	}
	return errors.Join(errs...)
}

// StandardRoIHead is a built StandardRoIHead; its variables are mmdet's: shared_head.* and
// bbox_head.*.
type StandardRoIHead struct {
	cfg    *StandardRoIHeadConfig
	Shared SharedHead
	Box    *BBoxHead
}

// Build builds the head in the scope of the registry.Env.
func (c *StandardRoIHeadConfig) Build(env *registry.Env) (any, error) {
	s, err := registry.Need[*nn.Scope](env)
	if err != nil {
		return nil, err
	}
	h := &StandardRoIHead{cfg: c}
	if h.Shared, err = registry.Build[SharedHead](registry.With(env, s.In("shared_head")), c.SharedHead); err != nil {
		return nil, fmt.Errorf("shared_head: %w", err)
	}
	if h.Box, err = registry.Build[*BBoxHead](registry.With(env, s.In("bbox_head")), c.BBoxHead); err != nil {
		return nil, fmt.Errorf("bbox_head: %w", err)
	}
	if h.Shared.OutChannels() != h.Box.cfg.InChannels {
		return nil, registry.FieldErrorf("bbox_head", "in_channels %d, but the shared head gives %d", h.Box.cfg.InChannels, h.Shared.OutChannels())
	}
	return h, nil
}

// RCNNTrain is the RoI head's part of a detector's train_cfg (mmdet's train_cfg.rcnn), built.
type RCNNTrain struct {
	Assigner *MaxIoUAssigner
	Sampler  *RandomSampler
}

// features pools the RoIs [B, K, 4] of each image from feat [B, H, W, C] and runs them
// through the shared head: [B*K, S', S', C'].
func (h *StandardRoIHead) features(feat, rois *Node, train bool) *Node {
	b, k := rois.Shape().Dim(0), rois.Shape().Dim(1)
	g := feat.Graph()
	dt := feat.DType()
	batch := ConvertDType(Iota(g, shapes.Make(dtypes.Int32, b, k, 1), 0), dt)
	r5 := Reshape(Concatenate([]*Node{batch, ConvertDType(rois, dt)}, -1), b*k, 5)
	l := h.cfg.BBoxRoIExtractor.RoILayer
	aligned := l.Aligned == nil || *l.Aligned
	pooled := RoIAlign(feat, r5, l.OutputSize, l.OutputSize, 1/float64(h.cfg.BBoxRoIExtractor.FeatmapStrides[0]), l.SamplingRatio, aligned, l.MaxGrid)
	return h.Shared.Forward(pooled, train)
}

// Loss is mmdet 2.x's StandardRoIHead.forward_train with the box branch: per image, the
// proposals [B, P, 4] (proposalValid [B, P]) are assigned to the GT boxes [B, G, 4] (gtLabels
// [B, G], gtValid [B, G]), the GT boxes prepended (add_gt_as_proposals) and Num RoIs sampled
// with keys [B, G + P] (SampleKeys); their features are pooled and run through the shared and
// box heads, and BBoxHead.Loss scores them against the batch's targets.
func (h *StandardRoIHead) Loss(feat, proposals, proposalValid, gtBoxes, gtLabels, gtValid, keys *Node, cfg *RCNNTrain) (lossCls, lossBBox, acc *Node) {
	dt := feat.DType()
	props := ConvertDType(StopGradient(proposals), dt)
	gt := ConvertDType(gtBoxes, dt)
	assign := cfg.Assigner.Assign(BoxIoU(props, gt), proposalValid, gtValid, gtLabels)
	boxes, assign, _ := cfg.Sampler.Prepare(props, gt, gtValid, gtLabels, assign)
	s := cfg.Sampler.SampleWithKeys(keys, assign.GTInds)
	b, num := s.Indices.Shape().Dim(0), s.Indices.Shape().Dim(1)
	rois := GatherRows(boxes, s.Indices) // [B, num, 4]
	g := feat.Graph()
	nc := h.Box.NumClasses()
	labels := Where(s.Positive, GatherRows(assign.Labels, s.Indices), Scalar(g, dtypes.Int32, nc))
	gtInds := Max(GatherRows(assign.GTInds, s.Indices), ScalarZero(g, dtypes.Int32))
	t := RoITargets{RoIs: Reshape(rois, b*num, 4), Valid: Reshape(s.Valid, b*num), Labels: Reshape(labels, b*num),
		GTBoxes: Reshape(GatherRows(gt, gtInds), b*num, 4)}
	cls, reg := h.Box.Forward(h.features(feat, rois, true))
	return h.Box.Loss(cls, reg, t)
}

// TestConfig is mmdet 2.x's test_cfg.rcnn: score_thr, nms and max_per_img.
type TestConfig struct {
	ScoreThr  float64   `toml:"score_thr" doc:"detections must score above this"`
	Nms       NMSConfig `toml:"nms" doc:"the per-class NMS of the detections"`
	MaxPerImg int       `toml:"max_per_img" doc:"the detections kept per image"`
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
func (h *StandardRoIHead) Predict(feat, proposals, proposalValid, imgShape *Node, cfg *TestConfig) Detections {
	props := ConvertDType(proposals, feat.DType())
	cls, reg := h.Box.Forward(h.features(feat, props, false))
	return h.Box.GetBBoxes(cls, reg, props, proposalValid, imgShape, cfg)
}

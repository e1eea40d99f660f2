package det

import (
	"errors"
	"math"

	"github.com/gomlx/gomlx/pkg/core/dtypes"
	. "github.com/gomlx/gomlx/pkg/core/graph"
	"github.com/gomlx/gomlx/pkg/core/shapes"

	"github.com/goselfsup/goselfsup/registry"
)

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

// RoIExtractorConfig is mmdet 2.x's SingleRoIExtractor: RoIAlign on one feature map (C4), or
// on the level of a pyramid that each RoI's scale maps to (FPN: featmap_strides [4, 8, 16,
// 32], finest_scale 56).
type RoIExtractorConfig struct {
	Type           string         `toml:"type" doc:"SingleRoIExtractor"`
	RoILayer       RoILayerConfig `toml:"roi_layer" doc:"the RoI pooling"`
	OutChannels    int            `toml:"out_channels" doc:"the feature maps' channels"`
	FeatmapStrides []int          `toml:"featmap_strides" doc:"the stride of each feature map used, finest first"`
	FinestScale    float64        `toml:"finest_scale" doc:"several maps: RoIs of scale sqrt(w h) below 2 * finest_scale go to the first (mmdet's default 56)"`
}

// Validate checks the keys.
func (c *RoIExtractorConfig) Validate() error {
	var errs []error
	if c.Type != "SingleRoIExtractor" {
		errs = append(errs, registry.FieldErrorf("type", "must be SingleRoIExtractor, got %q", c.Type))
	}
	l := c.RoILayer
	if l.Type != "RoIAlign" || l.OutputSize < 1 || l.SamplingRatio < 0 || (l.SamplingRatio == 0 && l.MaxGrid < 1) {
		errs = append(errs, registry.FieldErrorf("roi_layer", "must be a RoIAlign with output_size >= 1, sampling_ratio >= 0 and max_grid >= 1, got %+v", l))
	}
	if len(c.FeatmapStrides) == 0 {
		errs = append(errs, registry.FieldErrorf("featmap_strides", "must hold at least one stride"))
	}
	for _, s := range c.FeatmapStrides {
		if s < 1 {
			errs = append(errs, registry.FieldErrorf("featmap_strides", "must be positive, got %v", c.FeatmapStrides))
			break
		}
	}
	if len(c.FeatmapStrides) > 1 && !(c.FinestScale > 0) {
		errs = append(errs, registry.FieldErrorf("finest_scale", "must be positive, got %v", c.FinestScale))
	}
	return errors.Join(errs...)
}

// RoIExtractor is a built SingleRoIExtractor. The box branch uses one with output 7 and the
// mask branch another with output 14 over the same maps.
type RoIExtractor struct {
	cfg RoIExtractorConfig
}

// NewRoIExtractor validates cfg and returns its extractor.
func NewRoIExtractor(cfg RoIExtractorConfig) (*RoIExtractor, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return &RoIExtractor{cfg: cfg}, nil
}

// NumLevels is the number of feature maps the RoIs are pooled from (featmap_strides).
func (e *RoIExtractor) NumLevels() int { return len(e.cfg.FeatmapStrides) }

// OutChannels is out_channels, the feature maps' channels.
func (e *RoIExtractor) OutChannels() int { return e.cfg.OutChannels }

// OutputSize is the side of each RoI's features (roi_layer.output_size).
func (e *RoIExtractor) OutputSize() int { return e.cfg.RoILayer.OutputSize }

// MapRoILevels is mmdet 2.x's SingleRoIExtractor.map_roi_levels: the level of each RoI
// rois [..., 4] (x1, y1, x2, y2), scale = sqrt((x2 - x1) * (y2 - y1)), level =
// floor(log2(scale / finestScale + 1e-6)) clamped to [0, numLevels - 1], as Int32 [...].
// log2 is computed as ln(x) / ln(2) in the boxes' dtype. A box with x2 < x1 or y2 < y1 and a
// negative area (mmdet: NaN, then an undefined level) takes level 0.
func MapRoILevels(rois *Node, numLevels int, finestScale float64) *Node {
	g := rois.Graph()
	dt := rois.DType()
	x1, y1, x2, y2 := cornerCoords(StopGradient(rois))
	scale := Sqrt(Max(Mul(Sub(x2, x1), Sub(y2, y1)), ScalarZero(g, dt)))
	l := Floor(DivScalar(Log(AddScalar(DivScalar(scale, finestScale), 1e-6)), math.Ln2))
	l = Max(Min(l, Scalar(g, dt, numLevels-1)), ScalarZero(g, dt))
	return ConvertDType(l, dtypes.Int32)
}

// Extract is SingleRoIExtractor.forward: the features [B*K, S, S, C] (S = OutputSize, in
// rois' slot order, image-major) of the RoIs rois [B, K, 4] (image coordinates) of each
// image, pooled by RoIAlign from feats[level] [B, H_l, W_l, C] with spatial scale 1 /
// featmap_strides[level]. feats may hold more maps than the levels (FPN's extra P6): only the
// first NumLevels are read. With one level every RoI is pooled from it (mmdet's shortcut);
// with several, each from MapRoILevels' level.
//
// How the level is selected: the levels' maps are flattened into one table (4/3 of P2's
// memory for FPN) and each RoI's samples are gathered from its own level's part, with that
// level's spatial scale and size for the sampling grid and its clamps: one RoIAlign's gather
// for all levels, with the arithmetic of RoIAlign on the RoI's level, so the gradient reaches
// only that level, as mmdet's per-level scatter. (Pooling every RoI from every level and
// selecting costs NumLevels times the gather: the COCO128 Mask R-CNN step on two CPU cores
// took 4.0 s that way against 3.2 s, one measurement each.)
//
// Exactness of sampling_ratio 0 with max_grid G: a RoI is exact when both its sides at its
// level are at most G * S feature pixels. With FPN's mapping a square RoI at level l < 3 has
// a side below 112 * 2^l image pixels, under 28 feature pixels at stride 4 * 2^l, so G = 4 (S
// = 7) is exact for every square RoI up to 896 pixels (28 at stride 32); an elongated RoI
// whose longer side exceeds 28 feature pixels at its level is sampled on the clamped grid (see
// RoIAlign).
func (e *RoIExtractor) Extract(feats []*Node, rois *Node) *Node {
	nl := e.NumLevels()
	if len(feats) < nl {
		panicf("RoIExtractor.Extract: %d feature maps, want at least %d (featmap_strides)", len(feats), nl)
	}
	if rois.Rank() != 3 || rois.Shape().Dim(2) != 4 {
		panicf("RoIExtractor.Extract: rois must be [B, K, 4], got %s", rois.Shape())
	}
	b, k := rois.Shape().Dim(0), rois.Shape().Dim(1)
	g := rois.Graph()
	dt := feats[0].DType()
	boxes := ConvertDType(StopGradient(rois), dt)
	batch := ConvertDType(Iota(g, shapes.Make(dtypes.Int32, b, k, 1), 0), dt)
	r5 := Reshape(Concatenate([]*Node{batch, boxes}, -1), b*k, 5)
	l := e.cfg.RoILayer
	aligned := l.Aligned == nil || *l.Aligned
	scales := make([]float64, nl)
	for i, st := range e.cfg.FeatmapStrides {
		scales[i] = 1 / float64(st)
	}
	var lvl *Node
	if nl > 1 {
		lvl = MapRoILevels(Reshape(boxes, b*k, 4), nl, e.cfg.FinestScale)
	}
	return roiAlignLevels(feats[:nl], scales, r5, lvl, l.OutputSize, l.OutputSize, l.SamplingRatio, aligned, l.MaxGrid)
}

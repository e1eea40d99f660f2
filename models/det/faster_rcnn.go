package det

import (
	"errors"
	"fmt"

	"github.com/gomlx/gomlx/pkg/core/dtypes"
	. "github.com/gomlx/gomlx/pkg/core/graph"
	"github.com/gomlx/gomlx/pkg/core/shapes"
	"github.com/gomlx/gomlx/pkg/ml/context"

	"github.com/goselfsup/goselfsup/models"
	"github.com/goselfsup/goselfsup/models/nn"
	"github.com/goselfsup/goselfsup/registry"
)

// RPNTrainConfig is mmdet's train_cfg.rpn.
type RPNTrainConfig struct {
	Assigner      registry.Spec `toml:"assigner" registry:"bbox_assigners" doc:"the anchors' assigner (MaxIoUAssigner)"`
	Sampler       registry.Spec `toml:"sampler" registry:"bbox_samplers" doc:"the anchors' sampler (RandomSampler)"`
	AllowedBorder float64       `toml:"allowed_border" doc:"anchors crossing the image by more than this take no part (0 for C4; negative: all)"`
	PosWeight     float64       `toml:"pos_weight" doc:"the positives' weight: -1 (1) is the only value supported"`
	Debug         bool          `toml:"debug" doc:"mmdet's debug flag (ignored)"`
}

// RCNNTrainConfig is mmdet's train_cfg.rcnn.
type RCNNTrainConfig struct {
	Assigner  registry.Spec `toml:"assigner" registry:"bbox_assigners" doc:"the proposals' assigner (MaxIoUAssigner)"`
	Sampler   registry.Spec `toml:"sampler" registry:"bbox_samplers" doc:"the proposals' sampler (RandomSampler, add_gt_as_proposals)"`
	PosWeight float64       `toml:"pos_weight" doc:"the positives' weight: -1 (1) is the only value supported"`
	MaskSize  int           `toml:"mask_size" doc:"Mask R-CNN: the side of the mask targets (28); unused by the box branch"`
	// MaskMaxGrid bounds the adaptive sampling grid of the mask targets' RoIAlign
	// (MaskTargets): exact for RoIs up to mask_max_grid x mask_size image pixels a side.
	MaskMaxGrid int  `toml:"mask_max_grid" doc:"Mask R-CNN: the mask targets' RoIAlign samples an adaptive grid of at most this many points per bin and axis (exact for RoIs up to mask_max_grid x mask_size pixels a side); goselfsup's own key"`
	Debug       bool `toml:"debug" doc:"mmdet's debug flag (ignored)"`
}

// TwoStageTrainConfig is mmdet 2.x's train_cfg of a two-stage detector.
type TwoStageTrainConfig struct {
	RPN         RPNTrainConfig    `toml:"rpn" doc:"the RPN's targets"`
	RPNProposal RPNProposalConfig `toml:"rpn_proposal" doc:"the proposals the RoI head trains on"`
	RCNN        RCNNTrainConfig   `toml:"rcnn" doc:"the RoI head's targets"`
}

// TwoStageTestConfig is mmdet 2.x's test_cfg of a two-stage detector.
type TwoStageTestConfig struct {
	RPN  RPNProposalConfig `toml:"rpn" doc:"the proposals at test time"`
	RCNN TestConfig        `toml:"rcnn" doc:"the detections"`
}

// FasterRCNNConfig is mmdet 2.x's FasterRCNN (TwoStageDetector): without a neck the C4
// detector of mmselfsup's VOC benchmark (ResNet to res4, RPN, RoIAlign, res5 with an extra
// BN, the box head); with an FPN neck the R50-FPN detector (the backbone's outputs through
// the FPN, the RPN on every level, RoIAlign on each RoI's level, Shared4Conv1FCBBoxHead).
type FasterRCNNConfig struct {
	Backbone         registry.Spec           `toml:"backbone" registry:"backbones" doc:"the backbone; without a neck its last output is the feature map (ResNet with num_stages = 3: res4), with one all its outputs go through the neck" required:"true"`
	Neck             registry.Spec           `toml:"neck" registry:"necks" doc:"a multi-level neck (FPN); none for C4"`
	RPNHead          registry.Spec           `toml:"rpn_head" registry:"heads" doc:"the region proposal head (RPNHead)" required:"true"`
	RoIHead          registry.Spec           `toml:"roi_head" registry:"heads" doc:"the RoI head (StandardRoIHead with a shared head)" required:"true"`
	TrainCfg         TwoStageTrainConfig     `toml:"train_cfg" doc:"mmdet's train_cfg: rpn, rpn_proposal, rcnn"`
	TestCfg          TwoStageTestConfig      `toml:"test_cfg" doc:"mmdet's test_cfg: rpn, rcnn"`
	DataPreprocessor models.DataPreprocessor `toml:"data_preprocessor" doc:"how the uint8 images are normalised on the device"`
	Pretrained       string                  `toml:"pretrained" doc:"not supported: use load_from, or the backbone's weights from a checkpoint"`
}

func init() {
	registry.Add(registry.Algorithms, "FasterRCNN", "mmdet 2.x's Faster R-CNN: backbone, optional FPN neck, RPN, RoI head (C4 or FPN)",
		func() *FasterRCNNConfig {
			return &FasterRCNNConfig{TrainCfg: TwoStageTrainConfig{RPN: RPNTrainConfig{PosWeight: -1}, RCNN: RCNNTrainConfig{PosWeight: -1}}}
		})
}

func (c *FasterRCNNConfig) Validate() error {
	var errs []error
	for _, f := range []struct {
		key  string
		spec registry.Spec
	}{{"backbone", c.Backbone}, {"rpn_head", c.RPNHead}, {"roi_head", c.RoIHead},
		{"train_cfg.rpn.assigner", c.TrainCfg.RPN.Assigner}, {"train_cfg.rpn.sampler", c.TrainCfg.RPN.Sampler},
		{"train_cfg.rcnn.assigner", c.TrainCfg.RCNN.Assigner}, {"train_cfg.rcnn.sampler", c.TrainCfg.RCNN.Sampler}} {
		if f.spec.IsZero() {
			errs = append(errs, registry.FieldErrorf(f.key, "is required"))
		}
	}
	if c.TrainCfg.RPN.PosWeight > 0 || c.TrainCfg.RCNN.PosWeight > 0 {
		errs = append(errs, registry.FieldErrorf("train_cfg", "pos_weight must be -1 (a weight of 1), got rpn %v, rcnn %v", c.TrainCfg.RPN.PosWeight, c.TrainCfg.RCNN.PosWeight))
	}
	for key, v := range map[string]interface{ Validate() error }{
		"train_cfg.rpn_proposal": &c.TrainCfg.RPNProposal, "test_cfg.rpn": &c.TestCfg.RPN, "test_cfg.rcnn": &c.TestCfg.RCNN} {
		if err := v.Validate(); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", key, err))
		}
	}
	if c.Pretrained != "" {
		errs = append(errs, registry.FieldErrorf("pretrained", "not supported: use load_from"))
	}
	return errors.Join(errs...)
}

// FasterRCNN is a built FasterRCNN; its variables are mmdet's: backbone.*, neck.*,
// rpn_head.*, roi_head.shared_head.* and roi_head.bbox_head.*.
type FasterRCNN struct {
	cfg          *FasterRCNNConfig
	Backbone     models.Backbone
	Neck         MultiLevelNeck // nil without a neck (C4)
	RPN          *RPNHead
	RoI          *StandardRoIHead
	Preprocessor models.Preprocessor
	rpnTrain     *RPNTrain
	rcnnTrain    *RCNNTrain
	scope        *nn.Scope
}

// Build builds the detector; a RoI head with a mask branch is MaskRCNN's.
func (c *FasterRCNNConfig) Build(env *registry.Env) (any, error) {
	m, err := c.build(env)
	if err != nil {
		return nil, err
	}
	if m.RoI.Mask != nil {
		return nil, registry.FieldErrorf("roi_head.mask_head", "FasterRCNN has no mask branch: a detector with a mask head is a MaskRCNN")
	}
	return m, nil
}

func (c *FasterRCNNConfig) build(env *registry.Env) (*FasterRCNN, error) {
	s, err := registry.Need[*nn.Scope](env)
	if err != nil {
		return nil, err
	}
	m := &FasterRCNN{cfg: c, scope: s, Preprocessor: models.NewPreprocessor(c.DataPreprocessor)}
	m.Preprocessor.DType = s.DType()
	sub := func(name string) *registry.Env { return registry.With(env, s.In(name)) }
	if m.Backbone, err = registry.Build[models.Backbone](sub("backbone"), c.Backbone); err != nil {
		return nil, fmt.Errorf("backbone: %w", err)
	}
	if !c.Neck.IsZero() {
		if m.Neck, err = registry.Build[MultiLevelNeck](sub("neck"), c.Neck); err != nil {
			return nil, fmt.Errorf("neck: %w", err)
		}
	}
	if m.RPN, err = registry.Build[*RPNHead](sub("rpn_head"), c.RPNHead); err != nil {
		return nil, fmt.Errorf("rpn_head: %w", err)
	}
	if m.RoI, err = registry.Build[*StandardRoIHead](sub("roi_head"), c.RoIHead); err != nil {
		return nil, fmt.Errorf("roi_head: %w", err)
	}
	out := m.Backbone.OutChannels()
	if m.Neck != nil {
		if in := m.Neck.InChannels(); len(in) != len(out) || fmt.Sprint(in) != fmt.Sprint(out) {
			return nil, registry.FieldErrorf("neck", "in_channels %v, but the backbone's outputs have %v channels", in, out)
		}
		if m.RoI.Shared == nil && m.RoI.Extractor.OutChannels() != m.Neck.OutChannels() {
			return nil, registry.FieldErrorf("roi_head", "bbox_roi_extractor.out_channels %d, but the neck gives %d channels", m.RoI.Extractor.OutChannels(), m.Neck.OutChannels())
		}
		if m.Neck.OutChannels() != m.RPN.cfg.InChannels {
			return nil, registry.FieldErrorf("rpn_head", "in_channels %d, but the neck gives %d channels", m.RPN.cfg.InChannels, m.Neck.OutChannels())
		}
		if m.Neck.NumOuts() != m.RPN.Anchors.NumLevels() {
			return nil, registry.FieldErrorf("rpn_head", "the anchor generator has %d strides, but the neck gives %d maps", m.RPN.Anchors.NumLevels(), m.Neck.NumOuts())
		}
		if m.Neck.NumOuts() < m.RoI.Extractor.NumLevels() {
			return nil, registry.FieldErrorf("roi_head", "bbox_roi_extractor has %d featmap_strides, but the neck gives %d maps", m.RoI.Extractor.NumLevels(), m.Neck.NumOuts())
		}
	} else {
		if len(out) == 0 || out[len(out)-1] != m.RPN.cfg.InChannels {
			return nil, registry.FieldErrorf("rpn_head", "in_channels %d, but the backbone's last output has %v channels", m.RPN.cfg.InChannels, out)
		}
		if m.RPN.Anchors.NumLevels() != 1 || m.RoI.Extractor.NumLevels() != 1 {
			return nil, registry.FieldErrorf("rpn_head", "without a neck the detector has one feature map, but the anchor generator has %d strides and bbox_roi_extractor %d", m.RPN.Anchors.NumLevels(), m.RoI.Extractor.NumLevels())
		}
	}
	m.rpnTrain = &RPNTrain{AllowedBorder: c.TrainCfg.RPN.AllowedBorder}
	m.rcnnTrain = &RCNNTrain{MaskSize: c.TrainCfg.RCNN.MaskSize, MaskMaxGrid: c.TrainCfg.RCNN.MaskMaxGrid}
	if m.RoI.Mask != nil {
		if c.TrainCfg.RCNN.MaskSize != m.RoI.Mask.MaskSize() {
			return nil, registry.FieldErrorf("train_cfg.rcnn.mask_size", "is %d, but the mask head's masks are %d pixels a side", c.TrainCfg.RCNN.MaskSize, m.RoI.Mask.MaskSize())
		}
		if c.TrainCfg.RCNN.MaskMaxGrid < 1 {
			return nil, registry.FieldErrorf("train_cfg.rcnn.mask_max_grid", "must be at least 1 for a mask branch, got %d", c.TrainCfg.RCNN.MaskMaxGrid)
		}
		if t := c.TestCfg.RCNN.MaskThrBinary; !(t >= 0 && t <= 1) {
			return nil, registry.FieldErrorf("test_cfg.rcnn.mask_thr_binary", "must be in [0, 1], got %g", t)
		}
	}
	for _, b := range []struct {
		key  string
		spec registry.Spec
		dst  any
	}{{"train_cfg.rpn.assigner", c.TrainCfg.RPN.Assigner, &m.rpnTrain.Assigner}, {"train_cfg.rpn.sampler", c.TrainCfg.RPN.Sampler, &m.rpnTrain.Sampler},
		{"train_cfg.rcnn.assigner", c.TrainCfg.RCNN.Assigner, &m.rcnnTrain.Assigner}, {"train_cfg.rcnn.sampler", c.TrainCfg.RCNN.Sampler, &m.rcnnTrain.Sampler}} {
		switch dst := b.dst.(type) {
		case **MaxIoUAssigner:
			*dst, err = registry.Build[*MaxIoUAssigner](env, b.spec)
		case **RandomSampler:
			*dst, err = registry.Build[*RandomSampler](env, b.spec)
		}
		if err != nil {
			return nil, fmt.Errorf("%s: %w", b.key, err)
		}
	}
	return m, nil
}

// Scope is the detector's variable scope.
func (m *FasterRCNN) Scope() *nn.Scope { return m.scope }

// features normalises the images (zeroing the padding outside imgShapes, as mmdet pads after
// normalising) and returns the feature maps: the neck's outputs, or without a neck the
// backbone's last output.
func (m *FasterRCNN) features(images, imgShapes *Node, train bool) []*Node {
	x := m.Preprocessor.Apply(images)
	if imgShapes != nil {
		x = models.ZeroPadding(x, imgShapes)
	}
	feats := m.Backbone.Forward(x, train)
	if m.Neck != nil {
		return m.Neck.Forward(feats, train)
	}
	return feats[len(feats)-1:]
}

// Losses are a training step's losses, as mmdet logs them; Mask is nil without a mask
// branch.
type Losses struct {
	RPNCls, RPNBBox, Cls, BBox, Acc, Mask *Node
}

// Total is the sum that trains the detector (mmdet's parse_losses: every loss_*; acc is
// only logged).
func (l Losses) Total() *Node {
	t := Add(Add(l.RPNCls, l.RPNBBox), Add(l.Cls, l.BBox))
	if l.Mask != nil {
		t = Add(t, l.Mask)
	}
	return t
}

// Losses is mmdet 2.x's TwoStageDetector.forward_train: the RPN's losses, the proposals of
// train_cfg.rpn_proposal, and the RoI head's losses on them, for uint8 images with their
// sizes (b.ImgShapes) and ground truth (b.GTBoxes, b.GTLabels, b.GTValid). The samplers
// draw from ctx's random state.
func (m *FasterRCNN) Losses(ctx *context.Context, b models.Batch) Losses {
	if b.GTBoxes == nil || b.GTLabels == nil || b.GTValid == nil || b.ImgShapes == nil {
		panic("FasterRCNN: the batch has no boxes or image sizes")
	}
	feats := m.features(b.Images, b.ImgShapes, true)
	g := feats[0].Graph()
	cls, reg := m.RPN.ForwardLevels(feats)
	bs := cls[0].Shape().Dim(0)
	n := 0
	for _, c := range cls {
		n += c.Shape().Dim(1) * c.Shape().Dim(2) * c.Shape().Dim(3)
	}
	keys := ctx.RandomIntN(g, int64(1)<<KeyBits, shapes.Make(dtypes.Int64, bs, n))
	var l Losses
	l.RPNCls, l.RPNBBox, _ = m.RPN.LossLevels(cls, reg, b.GTBoxes, b.GTValid, b.ImgShapes, nil, keys, m.rpnTrain)
	props, _, valid := m.RPN.ProposalsLevels(cls, reg, b.ImgShapes, &m.cfg.TrainCfg.RPNProposal)
	keys = ctx.RandomIntN(g, int64(1)<<KeyBits, shapes.Make(dtypes.Int64, bs, b.GTBoxes.Shape().Dim(1)+props.Shape().Dim(1)))
	if m.RoI.Mask != nil && b.GTMasks == nil {
		panic("MaskRCNN: the batch has no instance masks")
	}
	r := m.RoI.Losses(feats, props, valid, RoIGroundTruth{Boxes: b.GTBoxes, Labels: b.GTLabels, Valid: b.GTValid, Masks: b.GTMasks}, keys, m.rcnnTrain)
	l.Cls, l.BBox, l.Acc, l.Mask = r.Cls, r.BBox, r.Acc, r.Mask
	return l
}

// Loss is the training loss of a batch (Losses' Total), for the engine.
func (m *FasterRCNN) Loss(ctx *context.Context, b models.Batch) *Node {
	return m.Losses(ctx, b).Total()
}

// Predict is mmdet 2.x's simple_test: the test proposals (test_cfg.rpn) and the detections
// (test_cfg.rcnn) of uint8 images of sizes imgShapes [B, 2], in the resized images'
// coordinates.
func (m *FasterRCNN) Predict(images, imgShapes *Node) Detections {
	feats := m.features(images, imgShapes, false)
	cls, reg := m.RPN.ForwardLevels(feats)
	props, _, valid := m.RPN.ProposalsLevels(cls, reg, imgShapes, &m.cfg.TestCfg.RPN)
	return m.RoI.Predict(feats, props, valid, imgShapes, &m.cfg.TestCfg.RCNN)
}

// Features returns the features for evaluation: the (first) feature map, globally pooled.
func (m *FasterRCNN) Features(images *Node) *Node {
	return nn.GlobalAvgPool(m.features(images, nil, false)[0])
}

// UsesBoxes reports that the detector trains on boxes: the runner passes the batches' ground
// truth and image sizes to Loss.
func (m *FasterRCNN) UsesBoxes() bool { return true }

// Detect is Predict's detections as the engine's val loop takes them: boxes [B, K, 4] in the
// resized images' coordinates, scores [B, K], labels [B, K] Int32 and valid [B, K] Bool, K
// = test_cfg.rcnn.max_per_img.
func (m *FasterRCNN) Detect(images, imgShapes *Node) (boxes, scores, labels, valid *Node) {
	d := m.Predict(images, imgShapes)
	return d.Boxes, d.Scores, d.Labels, d.Valid
}

// PretrainedSources says which of the detector's variables a pretrained checkpoint gives
// besides backbone.*: those of a shared head that names its sources (ResLayer: res5 from
// the checkpoint's backbone.layer4, as mmselfsup's C4 benchmark initialises it).
func (m *FasterRCNN) PretrainedSources() map[string]string {
	out := map[string]string{}
	if p, ok := m.RoI.Shared.(interface{ PretrainedSources() map[string]string }); ok {
		for k, v := range p.PretrainedSources() {
			out["roi_head.shared_head."+k] = v
		}
	}
	return out
}

package det

import (
	. "github.com/gomlx/gomlx/pkg/core/graph"

	"github.com/goselfsup/goselfsup/registry"
)

// MaskRCNNConfig is mmdet 2.x's MaskRCNN: a FasterRCNN whose RoI head has a mask branch
// (mask_roi_extractor and mask_head, FCNMaskHead), with train_cfg.rcnn's mask_size and
// test_cfg.rcnn's mask_thr_binary; the R50-FPN detector of mmselfsup's COCO benchmark. Its
// keys are FasterRCNN's.
type MaskRCNNConfig FasterRCNNConfig

func init() {
	registry.Add(registry.Algorithms, "MaskRCNN", "mmdet 2.x's Mask R-CNN: Faster R-CNN (FPN) with a mask branch in its RoI head",
		func() *MaskRCNNConfig {
			return &MaskRCNNConfig{TrainCfg: TwoStageTrainConfig{RPN: RPNTrainConfig{PosWeight: -1}, RCNN: RCNNTrainConfig{PosWeight: -1, MaskSize: 28}},
				TestCfg: TwoStageTestConfig{RCNN: TestConfig{MaskThrBinary: 0.5}}}
		})
}

func (c *MaskRCNNConfig) Validate() error { return (*FasterRCNNConfig)(c).Validate() }

// Build builds the detector; its RoI head must have a mask branch.
func (c *MaskRCNNConfig) Build(env *registry.Env) (any, error) {
	m, err := (*FasterRCNNConfig)(c).build(env)
	if err != nil {
		return nil, err
	}
	if m.RoI.Mask == nil {
		return nil, registry.FieldErrorf("roi_head.mask_head", "is required: MaskRCNN's RoI head has a mask branch (mask_roi_extractor and mask_head)")
	}
	return &MaskRCNN{m}, nil
}

// MaskRCNN is a built MaskRCNN: a FasterRCNN (its training losses include the mask
// branch's, loss_mask) that also predicts masks. Its variables are FasterRCNN's and
// roi_head.mask_head.*.
type MaskRCNN struct {
	*FasterRCNN
}

// UsesInstanceMasks reports that the detector trains on instance masks: the runner passes
// the batches' GT masks (models.Batch.GTMasks) to Loss.
func (m *MaskRCNN) UsesInstanceMasks() bool { return true }

// DetectMasks is mmdet 2.x's simple_test with the mask branch: Detect's detections, and each
// one's mask probabilities [B, K, S, S] of its class (S = the mask head's mask_size) in its
// box, for PasteMask.
func (m *MaskRCNN) DetectMasks(images, imgShapes *Node) (boxes, scores, labels, valid, masks *Node) {
	feats := m.features(images, imgShapes, false)
	cls, reg := m.RPN.ForwardLevels(feats)
	props, _, ok := m.RPN.ProposalsLevels(cls, reg, imgShapes, &m.cfg.TestCfg.RPN)
	d := m.RoI.Predict(feats, props, ok, imgShapes, &m.cfg.TestCfg.RCNN)
	return d.Boxes, d.Scores, d.Labels, d.Valid, m.RoI.PredictMasks(feats, d)
}

// PasteMask pastes one detection's mask probabilities (S x S, row-major, from DetectMasks)
// into an image of h x w pixels at box (x1, y1, x2, y2 in that image's pixels) and
// binarises it at test_cfg.rcnn.mask_thr_binary: mmdet 2.x's get_seg_masks (PasteMask).
func (m *MaskRCNN) PasteMask(prob []float32, box [4]float32, h, w int) ([]uint8, error) {
	return PasteMask(prob, m.RoI.Mask.MaskSize(), box, h, w, float32(m.cfg.TestCfg.RCNN.MaskThrBinary))
}

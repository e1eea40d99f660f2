package det

import (
	"errors"
	"fmt"

	. "github.com/gomlx/gomlx/pkg/core/graph"

	"github.com/goselfsup/goselfsup/models"
	"github.com/goselfsup/goselfsup/models/nn"
	"github.com/goselfsup/goselfsup/registry"
)

// ConvFCBBoxHeadConfig is mmdet 2.x's ConvFCBBoxHead with shared layers only (no separate
// cls/reg branches): num_shared_convs 3x3 ConvModules (conv, BN with norm_cfg, ReLU) on the
// RoI features, the result flattened in PyTorch's NCHW order ([C, S, S], so that weights
// from mmdet load as they are), num_shared_fcs fully connected layers with ReLU, then
// BBoxHead's fc_cls and fc_reg. Shared4Conv1FCBBoxHead (Mask R-CNN FPN's box head with
// norm_cfg) is num_shared_convs 4, num_shared_fcs 1; Shared2FCBBoxHead is 0 and 2.
type ConvFCBBoxHeadConfig struct {
	NumSharedConvs   int               `toml:"num_shared_convs" doc:"the shared 3x3 ConvModules"`
	NumSharedFCs     int               `toml:"num_shared_fcs" doc:"the shared fully connected layers (at least 1)"`
	NumClsConvs      int               `toml:"num_cls_convs" doc:"not supported: 0"`
	NumClsFCs        int               `toml:"num_cls_fcs" doc:"not supported: 0"`
	NumRegConvs      int               `toml:"num_reg_convs" doc:"not supported: 0"`
	NumRegFCs        int               `toml:"num_reg_fcs" doc:"not supported: 0"`
	ConvOutChannels  int               `toml:"conv_out_channels" doc:"the shared convolutions' channels"`
	FCOutChannels    int               `toml:"fc_out_channels" doc:"the shared fully connected layers' width"`
	NormCfg          models.NormConfig `toml:"norm_cfg" doc:"the convolutions' norm (BN or SyncBN); no type: none, convolutions with a bias"`
	WithAvgPool      bool              `toml:"with_avg_pool" doc:"not supported: false"`
	RoIFeatSize      int               `toml:"roi_feat_size" doc:"the RoI features' side"`
	InChannels       int               `toml:"in_channels" doc:"the RoI features' channels" required:"true"`
	NumClasses       int               `toml:"num_classes" doc:"the object classes, background not counted" required:"true"`
	BBoxCoder        registry.Spec     `toml:"bbox_coder" registry:"bbox_coders" doc:"the deltas' coder (DeltaXYWHBBoxCoder, stds [0.1, 0.1, 0.2, 0.2])"`
	RegClassAgnostic bool              `toml:"reg_class_agnostic" doc:"one set of deltas for every class"`
	RegDecodedBBox   bool              `toml:"reg_decoded_bbox" doc:"not supported: false (the loss is on the deltas)"`
	LossCls          LossConfig        `toml:"loss_cls" doc:"the classification loss: CrossEntropyLoss (softmax)"`
	LossBBox         LossConfig        `toml:"loss_bbox" doc:"the deltas' loss: L1Loss"`
}

func init() {
	def := func(convs, fcs int) func() *ConvFCBBoxHeadConfig {
		return func() *ConvFCBBoxHeadConfig {
			return &ConvFCBBoxHeadConfig{NumSharedConvs: convs, NumSharedFCs: fcs, ConvOutChannels: 256, FCOutChannels: 1024, RoIFeatSize: 7,
				NormCfg:  models.NormConfig{RequiresGrad: true, Momentum: 0.1, Eps: 1e-5, Affine: true},
				LossCls:  LossConfig{Type: "CrossEntropyLoss", LossWeight: 1},
				LossBBox: LossConfig{Type: "L1Loss", LossWeight: 1}}
		}
	}
	registry.Add(registry.Heads, "ConvFCBBoxHead", "mmdet 2.x's box head of shared convolutions and fully connected layers", def(0, 0))
	registry.Add(registry.Heads, "Shared4Conv1FCBBoxHead", "mmdet 2.x's ConvFCBBoxHead with 4 shared 3x3 convolutions and 1 fc (Mask R-CNN FPN with norm_cfg)", def(4, 1))
	registry.Add(registry.Heads, "Shared2FCBBoxHead", "mmdet 2.x's ConvFCBBoxHead with 2 shared fcs (Faster R-CNN FPN)", def(0, 2))
}

// Validate checks the keys.
func (c *ConvFCBBoxHeadConfig) Validate() error {
	var errs []error
	if c.NumSharedConvs < 0 || c.NumSharedFCs < 1 {
		errs = append(errs, registry.FieldErrorf("num_shared_fcs", "need num_shared_convs >= 0 and num_shared_fcs >= 1, got %d and %d", c.NumSharedConvs, c.NumSharedFCs))
	}
	if c.NumClsConvs != 0 || c.NumClsFCs != 0 || c.NumRegConvs != 0 || c.NumRegFCs != 0 {
		errs = append(errs, registry.FieldErrorf("num_cls_convs", "separate cls/reg branches are not supported: num_cls_convs, num_cls_fcs, num_reg_convs, num_reg_fcs must be 0"))
	}
	if c.NumSharedConvs > 0 && c.ConvOutChannels < 1 {
		errs = append(errs, registry.FieldErrorf("conv_out_channels", "must be at least 1, got %d", c.ConvOutChannels))
	}
	if c.FCOutChannels < 1 {
		errs = append(errs, registry.FieldErrorf("fc_out_channels", "must be at least 1, got %d", c.FCOutChannels))
	}
	if c.NormCfg.Type != "" {
		if err := c.NormCfg.Validate(); err != nil {
			errs = append(errs, fmt.Errorf("norm_cfg: %w", err))
		}
	}
	if c.WithAvgPool {
		errs = append(errs, registry.FieldErrorf("with_avg_pool", "only false is supported"))
	}
	if c.RegDecodedBBox {
		errs = append(errs, registry.FieldErrorf("reg_decoded_bbox", "only false is supported"))
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
		errs = append(errs, registry.FieldErrorf("loss_bbox", "only L1Loss is supported, got type %q", c.LossBBox.Type))
	}
	return errors.Join(errs...)
}

// ConvFCBBoxHead is a built ConvFCBBoxHead; its variables are mmdet's: shared_convs.<i>.conv
// (Kaiming normal, fan_out, as mmcv's ConvModule) and .bn, shared_fcs.<i> (xavier_init
// uniform, zero bias), fc_cls (N(0, 0.01)) and fc_reg (N(0, 0.001)). Loss and GetBBoxes are
// BBoxHead's.
type ConvFCBBoxHead struct {
	*BBoxHead
	cfg   *ConvFCBBoxHeadConfig
	convs []*convModule
	fcs   []*nn.Linear
}

// Build builds the head in the scope of the registry.Env.
func (c *ConvFCBBoxHeadConfig) Build(env *registry.Env) (any, error) {
	s, err := registry.Need[*nn.Scope](env)
	if err != nil {
		return nil, err
	}
	var norm *models.NormConfig
	if c.NormCfg.Type != "" {
		norm = &c.NormCfg
	}
	h := &ConvFCBBoxHead{cfg: c}
	ch := c.InChannels
	for i := range c.NumSharedConvs {
		h.convs = append(h.convs, newConvModule(s.In("shared_convs").In(fmt.Sprint(i)), ch, c.ConvOutChannels, 3, norm))
		ch = c.ConvOutChannels
	}
	in := ch * c.RoIFeatSize * c.RoIFeatSize
	for i := range c.NumSharedFCs {
		fc := nn.NewLinearNormal(s.In("shared_fcs").In(fmt.Sprint(i)), in, c.FCOutChannels, 0)
		xavierUniform(s, fc.Weight, in, c.FCOutChannels)
		h.fcs = append(h.fcs, fc)
		in = c.FCOutChannels
	}
	b := &BBoxHead{cfg: &BBoxHeadConfig{RoIFeatSize: c.RoIFeatSize, InChannels: in, NumClasses: c.NumClasses, BBoxCoder: c.BBoxCoder,
		RegClassAgnostic: c.RegClassAgnostic, LossCls: c.LossCls, LossBBox: c.LossBBox}}
	if b.Coder, err = registry.Build[*DeltaXYWHBBoxCoder](env, c.BBoxCoder); err != nil {
		return nil, fmt.Errorf("bbox_coder: %w", err)
	}
	b.fcCls = nn.NewLinearNormal(s.In("fc_cls"), in, c.NumClasses+1, 0.01)
	b.fcReg = nn.NewLinearNormal(s.In("fc_reg"), in, 4*b.regClasses(), 0.001)
	h.BBoxHead = b
	return h, nil
}

// InChannels is in_channels, the RoI features' channels.
func (h *ConvFCBBoxHead) InChannels() int { return h.cfg.InChannels }

// Forward returns the class scores [R, num_classes + 1] and the deltas [R, 4 * classes] of
// the RoI features x [R, S, S, C] (S = roi_feat_size); train selects the BNs' batch
// statistics.
func (h *ConvFCBBoxHead) Forward(x *Node, train bool) (cls, reg *Node) {
	if x.Rank() != 4 || x.Shape().Dim(1) != h.cfg.RoIFeatSize || x.Shape().Dim(2) != h.cfg.RoIFeatSize || x.Shape().Dim(3) != h.cfg.InChannels {
		panicf("ConvFCBBoxHead: RoI features must be [R, %d, %d, %d], got %s", h.cfg.RoIFeatSize, h.cfg.RoIFeatSize, h.cfg.InChannels, x.Shape())
	}
	for _, c := range h.convs {
		x = nn.ReLU(c.forward(x, train))
	}
	// PyTorch's x.flatten(1) of [R, C, S, S].
	x = Reshape(TransposeAllDims(x, 0, 3, 1, 2), x.Shape().Dim(0), -1)
	for _, fc := range h.fcs {
		x = nn.ReLU(fc.Forward(x))
	}
	return h.fcCls.Forward(x), h.fcReg.Forward(x)
}

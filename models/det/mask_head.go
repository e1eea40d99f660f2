package det

import (
	"errors"
	"fmt"

	"github.com/gomlx/gomlx/pkg/core/dtypes"
	. "github.com/gomlx/gomlx/pkg/core/graph"
	"github.com/gomlx/gomlx/pkg/ml/context"

	"github.com/goselfsup/goselfsup/models"
	"github.com/goselfsup/goselfsup/models/nn"
	"github.com/goselfsup/goselfsup/registry"
)

// FCNMaskHeadConfig is mmdet 2.x's FCNMaskHead, Mask R-CNN's mask branch: num_convs
// convolutions (conv_kernel_size, padding kernel/2) of the RoI features, each followed by
// the norm_cfg batch norm (when set; the convolutions have a bias only without one) and a
// ReLU; a transposed convolution (upsample_cfg "deconv", kernel = stride = scale_factor)
// and a ReLU; a 1x1 convolution (conv_logits) to one mask logit per class, or one with
// class_agnostic.
type FCNMaskHeadConfig struct {
	NumConvs        int                `toml:"num_convs" doc:"the 3x3 convolutions before the upsampling"`
	RoIFeatSize     int                `toml:"roi_feat_size" doc:"the RoI features' side (the masks' side is scale_factor times it)"`
	InChannels      int                `toml:"in_channels" doc:"the RoI features' channels"`
	ConvKernelSize  int                `toml:"conv_kernel_size" doc:"the convolutions' kernel (odd)"`
	ConvOutChannels int                `toml:"conv_out_channels" doc:"the convolutions' and the upsampling's channels"`
	NumClasses      int                `toml:"num_classes" doc:"the object classes, background not counted" required:"true"`
	ClassAgnostic   bool               `toml:"class_agnostic" doc:"one mask for every class"`
	UpsampleCfg     MaskUpsampleConfig `toml:"upsample_cfg" doc:"the upsampling: deconv"`
	NormCfg         models.NormConfig  `toml:"norm_cfg" doc:"the convolutions' batch norm (BN or SyncBN); type empty: none, and the convolutions have biases"`
	LossMask        MaskLossConfig     `toml:"loss_mask" doc:"the mask loss: CrossEntropyLoss with use_mask"`
}

// MaskUpsampleConfig is FCNMaskHead's upsample_cfg. Only "deconv" (a ConvTranspose2d with
// kernel_size = stride = scale_factor, mmdet's default) is supported.
type MaskUpsampleConfig struct {
	Type        string `toml:"type" doc:"deconv"`
	ScaleFactor int    `toml:"scale_factor" doc:"the upsampling factor (the deconvolution's kernel and stride)"`
}

// MaskLossConfig is FCNMaskHead's loss_mask: mmdet's CrossEntropyLoss with use_mask, the
// binary cross-entropy with logits of each RoI's class channel.
type MaskLossConfig struct {
	Type       string  `toml:"type" doc:"CrossEntropyLoss"`
	UseMask    bool    `toml:"use_mask" doc:"must be true: the per-pixel sigmoid cross-entropy of the RoI's class channel"`
	LossWeight float64 `toml:"loss_weight" doc:"the loss's weight"`
}

func init() {
	registry.Add(registry.Heads, "FCNMaskHead", "mmdet 2.x's Mask R-CNN mask head: convolutions, a 2x deconvolution and per-class mask logits",
		func() *FCNMaskHeadConfig {
			return &FCNMaskHeadConfig{NumConvs: 4, RoIFeatSize: 14, InChannels: 256, ConvKernelSize: 3, ConvOutChannels: 256,
				UpsampleCfg: MaskUpsampleConfig{Type: "deconv", ScaleFactor: 2},
				NormCfg:     models.NormConfig{RequiresGrad: true, Momentum: 0.1, Eps: 1e-5, Affine: true},
				LossMask:    MaskLossConfig{Type: "CrossEntropyLoss", UseMask: true, LossWeight: 1}}
		})
}

// Validate checks the config.
func (c *FCNMaskHeadConfig) Validate() error {
	var errs []error
	if c.NumConvs < 0 {
		errs = append(errs, registry.FieldErrorf("num_convs", "must be at least 0, got %d", c.NumConvs))
	}
	if c.RoIFeatSize < 1 {
		errs = append(errs, registry.FieldErrorf("roi_feat_size", "must be at least 1, got %d", c.RoIFeatSize))
	}
	if c.InChannels < 1 {
		errs = append(errs, registry.FieldErrorf("in_channels", "must be at least 1, got %d", c.InChannels))
	}
	if c.ConvKernelSize < 1 || c.ConvKernelSize%2 == 0 {
		errs = append(errs, registry.FieldErrorf("conv_kernel_size", "must be odd and positive, got %d", c.ConvKernelSize))
	}
	if c.ConvOutChannels < 1 {
		errs = append(errs, registry.FieldErrorf("conv_out_channels", "must be at least 1, got %d", c.ConvOutChannels))
	}
	if c.NumConvs == 0 && c.InChannels != c.ConvOutChannels {
		// The deconvolution's kernel is stored [k, k, out, in] in a Conv2d's variables,
		// whose bias has the size of in: both must agree (mmdet's configs always do).
		errs = append(errs, registry.FieldErrorf("conv_out_channels", "must equal in_channels (%d) when num_convs is 0, got %d", c.InChannels, c.ConvOutChannels))
	}
	if c.NumClasses < 1 {
		errs = append(errs, registry.FieldErrorf("num_classes", "must be at least 1, got %d", c.NumClasses))
	}
	if c.UpsampleCfg.Type != "deconv" {
		errs = append(errs, registry.FieldErrorf("upsample_cfg", `only type "deconv" is supported, got %q`, c.UpsampleCfg.Type))
	}
	if c.UpsampleCfg.ScaleFactor < 1 {
		errs = append(errs, registry.FieldErrorf("upsample_cfg", "scale_factor must be at least 1, got %d", c.UpsampleCfg.ScaleFactor))
	}
	if c.NormCfg.Type != "" {
		if err := c.NormCfg.Validate(); err != nil {
			errs = append(errs, fmt.Errorf("norm_cfg: %w", err))
		}
	}
	if c.LossMask.Type != "CrossEntropyLoss" || !c.LossMask.UseMask {
		errs = append(errs, registry.FieldErrorf("loss_mask", "only CrossEntropyLoss with use_mask = true is supported, got %+v", c.LossMask))
	}
	return errors.Join(errs...)
}

// FCNMaskHead is a built FCNMaskHead. Its variables are named as mmdet's state dict:
// convs.{i}.conv (kernel [k, k, in, out], mmcv ConvModule's kaiming_init: normal, fan_out,
// relu; a zero bias without a norm), convs.{i}.bn (weight 1, bias 0), upsample and
// conv_logits (nn.init.kaiming_normal_ fan_out relu, bias 0).
//
// The upsample weight is PyTorch's ConvTranspose2d weight W [Cin, Cout, kH, kW] stored as
// [kH, kW, Cout, Cin] (V[i, j, o, c] = W[c, o, i, j]): the checkpoint code's HWIO -> OIHW
// conversion of rank-4 weights (axes 3, 2, 0, 1) turns it into exactly PyTorch's layout, so
// it is exported and imported as any convolution kernel. Its initial std is PyTorch's
// fan_out for that tensor, sqrt(2 / (Cin * kH * kW)) (dim 0 of W is Cin).
type FCNMaskHead struct {
	cfg        *FCNMaskHeadConfig
	convs      []*nn.Conv2d
	bns        []*nn.BatchNorm2d // nil entries without a norm
	upsample   *nn.Conv2d        // Weight [k, k, Cout, Cin], Bias [Cout]
	convLogits *nn.Conv2d
	ctx        *context.Context // for the graph's autocast region (the deconvolution's matmul)
}

// Build builds the head in the scope of the registry.Env.
func (c *FCNMaskHeadConfig) Build(env *registry.Env) (any, error) {
	s, err := registry.Need[*nn.Scope](env)
	if err != nil {
		return nil, err
	}
	h := &FCNMaskHead{cfg: c, ctx: s.Context()}
	in := c.InChannels
	for i := range c.NumConvs {
		cs := s.In("convs").In(fmt.Sprint(i))
		k := c.ConvKernelSize
		h.convs = append(h.convs, nn.NewConv2d(cs.In("conv"), in, c.ConvOutChannels, k, 1, k/2, c.NormCfg.Type == ""))
		var bn *nn.BatchNorm2d
		if c.NormCfg.Type != "" {
			bn = nn.NewBatchNorm2d(cs.In("bn"), c.ConvOutChannels, c.NormCfg.Options())
		}
		h.bns = append(h.bns, bn)
		in = c.ConvOutChannels
	}
	k := c.UpsampleCfg.ScaleFactor
	// NewConv2dNormal(in=Cout, out=Cin) makes the weight [k, k, Cout, Cin] and a zero bias
	// [Cin] = [Cout] (Validate makes the two equal).
	h.upsample = nn.NewConv2dNormal(s.In("upsample"), c.ConvOutChannels, in, k, nn.KaimingFanOutStd(in, k, k))
	h.convLogits = nn.NewConv2dNormal(s.In("conv_logits"), c.ConvOutChannels, h.outClasses(), 1, nn.KaimingFanOutStd(h.outClasses(), 1, 1))
	return h, nil
}

func (h *FCNMaskHead) outClasses() int {
	if h.cfg.ClassAgnostic {
		return 1
	}
	return h.cfg.NumClasses
}

// NumClasses is the number of object classes.
func (h *FCNMaskHead) NumClasses() int { return h.cfg.NumClasses }

// InChannels is the channels of the RoI features it takes.
func (h *FCNMaskHead) InChannels() int { return h.cfg.InChannels }

// MaskSize is the side of the predicted masks: roi_feat_size times the upsampling factor
// (28 for mmdet's 14 and 2).
func (h *FCNMaskHead) MaskSize() int { return h.cfg.RoIFeatSize * h.cfg.UpsampleCfg.ScaleFactor }

// Forward returns the mask logits [N, S, S, classes] (S = MaskSize, classes = num_classes,
// or 1 with class_agnostic) of the RoI features x [N, roi_feat_size, roi_feat_size,
// in_channels] (NHWC). With train, the batch norms use and record the batch statistics
// (mmdet's training mode).
func (h *FCNMaskHead) Forward(x *Node, train bool) *Node {
	for i, c := range h.convs {
		x = c.Forward(x)
		if h.bns[i] != nil {
			x = h.bns[i].Forward(x, train)
		}
		x = nn.ReLU(x)
	}
	x = nn.ReLU(h.deconv(x))
	return h.convLogits.Forward(x)
}

// deconv is the ConvTranspose2d(Cin, Cout, k, stride k) of x [N, H, W, Cin]: as kernel and
// stride are equal the output patches do not overlap, so out[n, h*k+i, w*k+j, o] = b[o] +
// sum_c x[n, h, w, c] * W[c, o, i, j]: one matmul [N*H*W, Cin] x [Cin, k*k*Cout] and an
// interleaving of the (i, j) taps into the rows and columns. In an autocast region (see
// nn.SetAutocast) the matmul runs in the region's dtype, as nn.Conv2d's convolution.
func (h *FCNMaskHead) deconv(x *Node) *Node {
	g := x.Graph()
	d := x.Shape().Dimensions
	n, hh, ww, cin := d[0], d[1], d[2], d[3]
	k := h.cfg.UpsampleCfg.ScaleFactor
	v := h.upsample.Weight.ValueGraph(g) // [k, k, Cout, Cin]
	cout := v.Shape().Dim(2)
	in, dt := x, x.DType()
	if ad := nn.AutocastDType(h.ctx, g); dt == dtypes.Float32 && ad != dtypes.InvalidDType {
		dt = ad
	}
	if in.DType() != dt {
		in = ConvertDType(in, dt)
	}
	if v.DType() != dt {
		v = ConvertDType(v, dt)
	}
	wm := Reshape(TransposeAllDims(v, 3, 0, 1, 2), cin, k*k*cout) // [Cin, (i, j, o)]
	y := Dot(Reshape(in, n*hh*ww, cin), wm)                       // [N*H*W, k*k*Cout]
	if y.DType() != x.DType() {
		y = ConvertDType(y, x.DType())
	}
	y = Reshape(y, n, hh, ww, k, k, cout)
	y = Reshape(TransposeAllDims(y, 0, 1, 3, 2, 4, 5), n, hh*k, ww*k, cout) // [N, H, i, W, j, o]
	b := h.upsample.Bias.ValueGraph(g)
	if b.DType() != y.DType() {
		b = ConvertDType(b, y.DType())
	}
	return Add(y, Reshape(b, 1, 1, 1, cout))
}

// maskChannel selects each RoI's channel labels [N] of pred [N, S, S, classes]: channel 0
// with class_agnostic. Labels outside [0, num_classes) are clamped (callers mask those
// slots out).
func (h *FCNMaskHead) maskChannel(pred, labels *Node) *Node {
	if h.cfg.ClassAgnostic {
		return Squeeze(pred, -1)
	}
	g := pred.Graph()
	nc := h.cfg.NumClasses
	n := pred.Shape().Dim(0)
	lab := ConvertDType(labels, dtypes.Int32)
	lab = Max(Min(lab, Scalar(g, dtypes.Int32, nc-1)), ScalarZero(g, dtypes.Int32))
	sel := Reshape(OneHot(lab, nc, pred.DType()), n, 1, 1, nc)
	return ReduceSum(Mul(pred, sel), -1)
}

// Loss is mmdet 2.x's FCNMaskHead.loss (CrossEntropyLoss with use_mask, reduction mean):
// the binary cross-entropy with logits of each RoI's label channel of pred [N, S, S,
// classes] against its target targets [N, S, S] (0 or 1), averaged over the P x S x S
// elements of the P positive RoIs, times loss_weight. The slots are weighted by weight [N]
// (1 for a positive RoI, 0 for a padding slot; P is its sum); labels [N] Int32 are the
// positives' classes (any value in a padding slot). With no positive the loss is 0 with a
// zero gradient, as mmdet's mask_pred.sum() * 0. The cross-entropy is the stable
// softplus(x) - x * t, written so that its gradient is sigmoid(x) - t everywhere, as
// PyTorch's (x = 0 included).
func (h *FCNMaskHead) Loss(pred, targets, labels, weight *Node) *Node {
	g := pred.Graph()
	dt := pred.DType()
	n, s := pred.Shape().Dim(0), pred.Shape().Dim(1)
	x := h.maskChannel(pred, labels) // [N, S, S]
	t := StopGradient(ConvertDType(targets, dt))
	w := StopGradient(ConvertDType(weight, dt))
	zero := ZerosLike(x)
	pos := GreaterOrEqual(x, zero)
	negAbs := Where(pos, Neg(x), x) // -|x|, with gradient -1 at 0
	softplus := Add(Where(pos, x, zero), Log1P(Exp(negAbs)))
	bce := Sub(softplus, Mul(x, t))
	total := ReduceAllSum(Mul(bce, Reshape(w, n, 1, 1)))
	count := MulScalar(Max(ReduceAllSum(w), ScalarOne(g, dt)), float64(s*s))
	return MulScalar(Div(total, count), h.cfg.LossMask.LossWeight)
}

// Probs is the test-time half of mmdet 2.x's FCNMaskHead.get_seg_masks in the graph: the
// sigmoid of each RoI's predicted-class channel labels [N] Int32 of the logits pred [N, S,
// S, classes], [N, S, S]. PasteMask then pastes each into the original image.
func (h *FCNMaskHead) Probs(pred, labels *Node) *Node {
	return Sigmoid(h.maskChannel(pred, labels))
}

package det

import (
	"errors"
	"fmt"
	"hash/fnv"
	"math"
	"math/rand/v2"

	"github.com/gomlx/gomlx/pkg/core/dtypes"
	. "github.com/gomlx/gomlx/pkg/core/graph"
	"github.com/gomlx/gomlx/pkg/core/tensors"
	"github.com/gomlx/gomlx/pkg/ml/context"

	"github.com/goselfsup/goselfsup/models"
	"github.com/goselfsup/goselfsup/models/nn"
	"github.com/goselfsup/goselfsup/registry"
)

// MultiLevelNeck is a neck that maps the backbone's outputs to several feature maps (FPN):
// the detectors' necks, unlike models.Neck, which pools to one vector per image.
type MultiLevelNeck interface {
	// Forward maps the backbone's outputs [B, H_i, W_i, C_i] to feature maps [B, H_l, W_l, C].
	Forward(feats []*Node, train bool) []*Node
	// InChannels is the channels of each input it takes, one per backbone output.
	InChannels() []int
	// OutChannels is the channels of every output.
	OutChannels() int
	// NumOuts is the number of outputs.
	NumOuts() int
}

// FPNConfig is mmdet 2.x's FPN with add_extra_convs = false: a lateral 1x1 ConvModule per
// input, the top-down path (nearest upsampling to the lower level's size, then an add), a
// 3x3 ConvModule per level, and max_pool2d(kernel 1, stride 2) of the last output for each
// extra level (P6 for num_outs 5). With norm_cfg each ConvModule is conv (no bias) + BN,
// without it a conv with a bias; no activation (act_cfg None).
type FPNConfig struct {
	InChannels    []int             `toml:"in_channels" doc:"the channels of each backbone output" required:"true"`
	OutChannels   int               `toml:"out_channels" doc:"the channels of every output" required:"true"`
	NumOuts       int               `toml:"num_outs" doc:"the outputs: the levels from start_level, then max-pooled extra levels" required:"true"`
	StartLevel    int               `toml:"start_level" doc:"the first backbone output used (0 is the only value supported)"`
	EndLevel      int               `toml:"end_level" doc:"the last backbone output used; -1: the last (the only value supported)"`
	AddExtraConvs bool              `toml:"add_extra_convs" doc:"extra levels by convolutions (not supported: false, max pooling)"`
	NormCfg       models.NormConfig `toml:"norm_cfg" doc:"the ConvModules' norm (BN or SyncBN); no type: none, convolutions with a bias"`
	UpsampleCfg   struct {
		Mode string `toml:"mode" doc:"nearest (the only mode supported)"`
	} `toml:"upsample_cfg" doc:"the top-down upsampling: F.interpolate's arguments"`
}

func init() {
	registry.Add(registry.Necks, "FPN", "mmdet 2.x's feature pyramid network (add_extra_convs = false: extra levels by max pooling)",
		func() *FPNConfig {
			c := &FPNConfig{EndLevel: -1, NormCfg: models.NormConfig{RequiresGrad: true, Momentum: 0.1, Eps: 1e-5, Affine: true}}
			c.UpsampleCfg.Mode = "nearest"
			return c
		})
}

// Validate checks the keys.
func (c *FPNConfig) Validate() error {
	var errs []error
	if len(c.InChannels) == 0 {
		errs = append(errs, registry.FieldErrorf("in_channels", "must name at least one input"))
	}
	for _, ch := range c.InChannels {
		if ch < 1 {
			errs = append(errs, registry.FieldErrorf("in_channels", "must be positive, got %v", c.InChannels))
			break
		}
	}
	if c.OutChannels < 1 {
		errs = append(errs, registry.FieldErrorf("out_channels", "must be at least 1, got %d", c.OutChannels))
	}
	if c.NumOuts < len(c.InChannels) {
		errs = append(errs, registry.FieldErrorf("num_outs", "must be at least the inputs (%d), got %d", len(c.InChannels), c.NumOuts))
	}
	if c.StartLevel != 0 {
		errs = append(errs, registry.FieldErrorf("start_level", "only 0 is supported, got %d", c.StartLevel))
	}
	if c.EndLevel != -1 {
		errs = append(errs, registry.FieldErrorf("end_level", "only -1 is supported, got %d", c.EndLevel))
	}
	if c.AddExtraConvs {
		errs = append(errs, registry.FieldErrorf("add_extra_convs", "only false (extra levels by max pooling, the Mask R-CNN FPN) is supported"))
	}
	if c.NormCfg.Type != "" {
		if err := c.NormCfg.Validate(); err != nil {
			errs = append(errs, fmt.Errorf("norm_cfg: %w", err))
		}
	}
	if c.UpsampleCfg.Mode != "nearest" {
		errs = append(errs, registry.FieldErrorf("upsample_cfg", "mode must be nearest, got %q", c.UpsampleCfg.Mode))
	}
	return errors.Join(errs...)
}

// convModule is mmcv's ConvModule without activation: a convolution, then an optional BN
// (the convolution has a bias exactly when there is no norm, mmcv's bias = "auto").
type convModule struct {
	conv *nn.Conv2d
	bn   *nn.BatchNorm2d
}

// newConvModule creates the module in scope s (variables conv.* and bn.*); norm nil: no BN.
func newConvModule(s *nn.Scope, in, out, kernel int, norm *models.NormConfig) *convModule {
	m := &convModule{conv: nn.NewConv2d(s.In("conv"), in, out, kernel, 1, kernel/2, norm == nil)}
	if norm != nil {
		m.bn = nn.NewBatchNorm2d(s.In("bn"), out, norm.Options())
	}
	return m
}

func (m *convModule) forward(x *Node, train bool) *Node {
	y := m.conv.Forward(x)
	if m.bn != nil {
		y = m.bn.Forward(y, train)
	}
	return y
}

// xavierUniform sets the variable v (a weight of fanIn inputs and fanOut outputs per
// kernel tap times the taps, PyTorch's fans) to mmcv's xavier_init(distribution="uniform",
// gain 1): U(±sqrt(6 / (fan_in + fan_out))), drawn from a source seeded by the scope's
// seed and the variable's scope (so that it depends on nothing else).
func xavierUniform(s *nn.Scope, v *context.Variable, fanIn, fanOut int) {
	bound := math.Sqrt(6 / float64(fanIn+fanOut))
	h := fnv.New64a()
	h.Write([]byte(v.Scope()))
	h.Write([]byte{0})
	h.Write([]byte(v.Name() + ".xavier"))
	rng := rand.New(rand.NewPCG(s.Seed(), h.Sum64()))
	dims := v.Shape().Dimensions
	data := make([]float64, v.Shape().Size())
	for i := range data {
		data[i] = (2*rng.Float64() - 1) * bound
	}
	v.SetValue(s.Tensor(data, dims...))
}

// xavierConv initialises a convolution's weight by xavierUniform (its bias stays 0).
func xavierConv(s *nn.Scope, c *nn.Conv2d) {
	k := c.Kernel * c.Kernel
	xavierUniform(s, c.Weight, k*c.InChannels, k*c.OutChannels)
}

// FPN is a built FPN; its variables are mmdet's: lateral_convs.<i>.conv.* and .bn.*,
// fpn_convs.<i>.conv.* and .bn.*, the convolutions initialised with xavier_init(uniform) and
// zero biases (mmdet's FPN init), the BNs with weight 1 and bias 0.
type FPN struct {
	cfg       *FPNConfig
	laterals  []*convModule
	fpnConvs  []*convModule
	numInputs int
}

// Build builds the neck in the scope of the registry.Env.
func (c *FPNConfig) Build(env *registry.Env) (any, error) {
	s, err := registry.Need[*nn.Scope](env)
	if err != nil {
		return nil, err
	}
	var norm *models.NormConfig
	if c.NormCfg.Type != "" {
		norm = &c.NormCfg
	}
	f := &FPN{cfg: c, numInputs: len(c.InChannels)}
	for i, in := range c.InChannels {
		l := newConvModule(s.In("lateral_convs").In(fmt.Sprint(i)), in, c.OutChannels, 1, norm)
		p := newConvModule(s.In("fpn_convs").In(fmt.Sprint(i)), c.OutChannels, c.OutChannels, 3, norm)
		xavierConv(s, l.conv)
		xavierConv(s, p.conv)
		f.laterals = append(f.laterals, l)
		f.fpnConvs = append(f.fpnConvs, p)
	}
	return f, nil
}

// InChannels is in_channels.
func (f *FPN) InChannels() []int { return f.cfg.InChannels }

// OutChannels is out_channels.
func (f *FPN) OutChannels() int { return f.cfg.OutChannels }

// NumOuts is num_outs.
func (f *FPN) NumOuts() int { return f.cfg.NumOuts }

// Forward is mmdet 2.x's FPN.forward: feats are the backbone's outputs [B, H_i, W_i,
// in_channels[i]], finest first (extra outputs before them, such as a stem, are an error:
// pass exactly len(in_channels)); the result is num_outs maps [B, H_l, W_l, out_channels],
// finest first. train selects the BNs' batch statistics.
func (f *FPN) Forward(feats []*Node, train bool) []*Node {
	if len(feats) != f.numInputs {
		panicf("FPN: %d inputs, want %d (in_channels)", len(feats), f.numInputs)
	}
	lat := make([]*Node, len(feats))
	for i, x := range feats {
		if x.Shape().Dim(3) != f.cfg.InChannels[i] {
			panicf("FPN: input %d has %d channels, want %d", i, x.Shape().Dim(3), f.cfg.InChannels[i])
		}
		lat[i] = f.laterals[i].forward(x, train)
	}
	for i := len(lat) - 1; i > 0; i-- {
		lat[i-1] = Add(lat[i-1], NearestResize(lat[i], lat[i-1].Shape().Dim(1), lat[i-1].Shape().Dim(2)))
	}
	outs := make([]*Node, 0, f.cfg.NumOuts)
	for i, x := range lat {
		outs = append(outs, f.fpnConvs[i].forward(x, train))
	}
	for len(outs) < f.cfg.NumOuts {
		// max_pool2d(x, 1, stride=2): every other pixel from the first, ceil(H / 2) rows.
		last := outs[len(outs)-1]
		outs = append(outs, Slice(last, AxisRange(), AxisRange().Stride(2), AxisRange().Stride(2), AxisRange()))
	}
	return outs
}

// NearestResize is F.interpolate(mode="nearest") of x [B, H, W, C] to [B, outH, outW, C]:
// output pixel d reads input pixel min(floor(d * (in / out)), in - 1), the scale computed in
// float32 as PyTorch's CPU kernel does. An integer factor repeats each pixel (exact, no
// arithmetic); other sizes select rows and columns with 0/1 matrices, whose products are
// exact too.
func NearestResize(x *Node, outH, outW int) *Node {
	b, h, w, c := x.Shape().Dim(0), x.Shape().Dim(1), x.Shape().Dim(2), x.Shape().Dim(3)
	if outH == h && outW == w {
		return x
	}
	if outH%h == 0 && outW%w == 0 {
		fh, fw := outH/h, outW/w
		y := BroadcastToDims(Reshape(x, b, h, 1, w, 1, c), b, h, fh, w, fw, c)
		return Reshape(y, b, outH, outW, c)
	}
	g := x.Graph()
	rows := ConvertDType(ConstTensor(g, nearestMatrix(h, outH, x.DType())), x.DType()) // [outH, H]
	cols := ConvertDType(ConstTensor(g, nearestMatrix(w, outW, x.DType())), x.DType()) // [outW, W]
	y := Einsum("oh,bhwc->bowc", rows, x)
	return Einsum("pw,bowc->bopc", cols, y)
}

// nearestMatrix is the [out, in] 0/1 matrix of nearest interpolation from in to out pixels.
func nearestMatrix(in, out int, dt dtypes.DType) *tensors.Tensor {
	scale := float32(in) / float32(out)
	m := make([]float64, out*in)
	for d := range out {
		src := min(int(math.Floor(float64(float32(d)*scale))), in-1)
		m[d*in+src] = 1
	}
	if dt == dtypes.Float64 {
		return tensors.FromFlatDataAndDimensions(m, out, in)
	}
	f := make([]float32, len(m))
	for i, v := range m {
		f[i] = float32(v)
	}
	return tensors.FromFlatDataAndDimensions(f, out, in)
}

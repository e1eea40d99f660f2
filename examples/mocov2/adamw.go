package mocov2

import (
	"errors"

	"github.com/gomlx/gomlx/pkg/core/dtypes"
	. "github.com/gomlx/gomlx/pkg/core/graph"
	"github.com/gomlx/gomlx/pkg/core/tensors"
	"github.com/gomlx/gomlx/pkg/ml/context"

	"github.com/goselfsup/goselfsup/engine"
	"github.com/goselfsup/goselfsup/registry"
)

func init() {
	registry.Add(registry.Optimizers, "AdamW", "Adam with decoupled weight decay (PyTorch's AdamW; examples/mocov2)",
		func() *AdamWConfig {
			return &AdamWConfig{LR: 1e-3, Betas: [2]float64{0.9, 0.999}, Eps: 1e-8, WeightDecay: 1e-2}
		})
}

// AdamWConfig is torch.optim.AdamW, with its keys and defaults.
type AdamWConfig struct {
	LR          float64    `toml:"lr" doc:"the base learning rate"`
	Betas       [2]float64 `toml:"betas" doc:"the decay rates of the first and second moment estimates"`
	Eps         float64    `toml:"eps" doc:"added to the square root of the second moment, for stability"`
	WeightDecay float64    `toml:"weight_decay" doc:"the decoupled weight decay: p -= lr * weight_decay * p each step"`
	AMSGrad     bool       `toml:"amsgrad" doc:"the AMSGrad variant (not supported: must be false)"`
}

func (c *AdamWConfig) Validate() error {
	var errs []error
	if c.LR <= 0 {
		errs = append(errs, registry.FieldErrorf("lr", "must be positive, got %g", c.LR))
	}
	for _, b := range c.Betas {
		if b < 0 || b >= 1 {
			errs = append(errs, registry.FieldErrorf("betas", "each must be in [0, 1), got %v", c.Betas))
			break
		}
	}
	if c.Eps <= 0 {
		errs = append(errs, registry.FieldErrorf("eps", "must be positive, got %g", c.Eps))
	}
	if c.WeightDecay < 0 {
		errs = append(errs, registry.FieldErrorf("weight_decay", "must not be negative, got %g", c.WeightDecay))
	}
	if c.AMSGrad {
		errs = append(errs, registry.FieldErrorf("amsgrad", "is not supported"))
	}
	return errors.Join(errs...)
}

func (c *AdamWConfig) Build(*registry.Env) (any, error) { return &AdamW{AdamWConfig: *c}, nil }

// AdamW is PyTorch's AdamW in the graph. At step t (from 1), for each parameter p with
// gradient g and weight-decay multiplier d (paramwise_cfg):
//
//	p = p * (1 - lr * weight_decay * d)
//	m = beta1 * m + (1 - beta1) * g
//	v = beta2 * v + (1 - beta2) * g²
//	p = p - lr / (1 - beta1^t) * m / (sqrt(v) / sqrt(1 - beta2^t) + eps)
//
// Its state is the variables optimizer.exp_avg.<parameter>, optimizer.exp_avg_sq.<parameter>
// (PyTorch's names) and optimizer.step, which checkpoints save and load_from leaves out.
type AdamW struct {
	AdamWConfig

	params        []engine.Param
	expAvg, expSq []*context.Variable
	step          *context.Variable
}

func (o *AdamW) LR() float64 { return o.AdamWConfig.LR }

// Init creates the zeroed moment estimates of params and the step count.
func (o *AdamW) Init(ctx *context.Context, params []engine.Param) error {
	o.params = params
	avg := ctx.InAbsPath("/optimizer/exp_avg").Checked(false)
	sq := ctx.InAbsPath("/optimizer/exp_avg_sq").Checked(false)
	for _, p := range params {
		a := avg.VariableWithValue(p.Name, tensors.FromShape(p.Var.Shape()))
		a.SetTrainable(false)
		s := sq.VariableWithValue(p.Name, tensors.FromShape(p.Var.Shape()))
		s.SetTrainable(false)
		o.expAvg, o.expSq = append(o.expAvg, a), append(o.expSq, s)
	}
	o.step = ctx.InAbsPath("/optimizer").Checked(false).VariableWithValue("step", int64(0))
	o.step.SetTrainable(false)
	return nil
}

// Update adds the step's update of every parameter. The bias corrections are computed in
// float64, as PyTorch computes them in Python floats.
func (o *AdamW) Update(grads []*Node, lr *Node) {
	g := lr.Graph()
	step := AddScalar(o.step.ValueGraph(g), 1)
	t := ConvertDType(step, dtypes.Float64)
	b1, b2 := o.Betas[0], o.Betas[1]
	lr64 := ConvertDType(lr, dtypes.Float64)
	stepSize := Div(lr64, OneMinus(Pow(Scalar(g, dtypes.Float64, b1), t))) // lr / (1 - beta1^t)
	bc2Sqrt := Sqrt(OneMinus(Pow(Scalar(g, dtypes.Float64, b2), t)))       // sqrt(1 - beta2^t)
	for i, prm := range o.params {
		p, grad := prm.Var.ValueGraph(g), grads[i]
		dt := p.DType()
		if wd := o.WeightDecay * prm.DecayMult; wd != 0 {
			p = Mul(p, ConvertDType(OneMinus(MulScalar(lr64, wd)), dt))
		}
		m := Add(MulScalar(o.expAvg[i].ValueGraph(g), b1), MulScalar(grad, 1-b1))
		v := Add(MulScalar(o.expSq[i].ValueGraph(g), b2), MulScalar(Mul(grad, grad), 1-b2))
		o.expAvg[i].SetValueGraph(m)
		o.expSq[i].SetValueGraph(v)
		denom := AddScalar(Div(Sqrt(v), ConvertDType(bc2Sqrt, dt)), o.Eps)
		prm.Var.SetValueGraph(Sub(p, Mul(ConvertDType(stepSize, dt), Div(m, denom))))
	}
	o.step.SetValueGraph(step)
}

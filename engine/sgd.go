package engine

import (
	"errors"

	"github.com/gomlx/gomlx/pkg/core/dtypes"
	. "github.com/gomlx/gomlx/pkg/core/graph"
	"github.com/gomlx/gomlx/pkg/core/tensors"
	gctx "github.com/gomlx/gomlx/pkg/ml/context"

	"github.com/goselfsup/goselfsup/registry"
)

func init() {
	registry.Add(registry.Optimizers, "SGD", "stochastic gradient descent with momentum, Nesterov and weight decay (PyTorch semantics)",
		func() *SGDConfig { return &SGDConfig{} })
}

// SGDConfig is PyTorch's SGD: momentum, dampening, Nesterov and L2 weight decay.
type SGDConfig struct {
	LR          float64 `toml:"lr" doc:"the base learning rate"`
	Momentum    float64 `toml:"momentum" doc:"the momentum factor (0: none)"`
	Dampening   float64 `toml:"dampening" doc:"the dampening of the momentum"`
	WeightDecay float64 `toml:"weight_decay" doc:"the L2 penalty, added to the gradient"`
	Nesterov    bool    `toml:"nesterov" doc:"Nesterov momentum"`
}

func (c *SGDConfig) Validate() error {
	var errs []error
	if c.LR <= 0 {
		errs = append(errs, registry.FieldErrorf("lr", "must be positive, got %g", c.LR))
	}
	if c.Momentum < 0 {
		errs = append(errs, registry.FieldErrorf("momentum", "must not be negative, got %g", c.Momentum))
	}
	if c.WeightDecay < 0 {
		errs = append(errs, registry.FieldErrorf("weight_decay", "must not be negative, got %g", c.WeightDecay))
	}
	if c.Nesterov && (c.Momentum <= 0 || c.Dampening != 0) {
		errs = append(errs, registry.FieldErrorf("nesterov", "needs momentum > 0 and dampening = 0, as in PyTorch"))
	}
	return errors.Join(errs...)
}

func (c *SGDConfig) Build(*registry.Env) (any, error) { return &SGD{SGDConfig: *c}, nil }

// SGD is PyTorch's torch.optim.SGD, in the graph:
//
//	g = grad + weight_decay * decay_mult * p
//	buf = g on the first step, else momentum * buf + (1 - dampening) * g
//	g = g + momentum * buf if nesterov, else buf
//	p = p - lr * g
//
// The momentum buffers are variables named "optimizer.momentum_buffer.<parameter>".
type SGD struct {
	SGDConfig

	params  []Param
	buffers []*gctx.Variable
	step    *gctx.Variable
}

func (o *SGD) LR() float64 { return o.SGDConfig.LR }

func (o *SGD) Init(ctx *gctx.Context, params []Param) error {
	o.params = params
	state := ctx.InAbsPath("/optimizer/momentum_buffer").Checked(false)
	if o.Momentum != 0 {
		for _, p := range params {
			buf := state.VariableWithValue(p.Name, tensors.FromShape(p.Var.Shape()))
			buf.SetTrainable(false)
			o.buffers = append(o.buffers, buf)
		}
	}
	o.step = ctx.InAbsPath("/optimizer").Checked(false).VariableWithValue("step", int64(0))
	o.step.SetTrainable(false)
	return nil
}

func (o *SGD) Update(grads []*Node, lr *Node) {
	g := lr.Graph()
	step := o.step.ValueGraph(g)
	first := Equal(step, ScalarZero(g, dtypes.Int64))
	for i, prm := range o.params {
		p, grad := prm.Var.ValueGraph(g), grads[i]
		if wd := o.WeightDecay * prm.DecayMult; wd != 0 {
			grad = Add(grad, MulScalar(p, wd))
		}
		if o.Momentum != 0 {
			buf := o.buffers[i].ValueGraph(g)
			next := Add(MulScalar(buf, o.Momentum), MulScalar(grad, 1-o.Dampening))
			next = Where(first, grad, next)
			o.buffers[i].SetValueGraph(next)
			if o.Nesterov {
				grad = Add(grad, MulScalar(next, o.Momentum))
			} else {
				grad = next
			}
		}
		prm.Var.SetValueGraph(Sub(p, Mul(ConvertDType(lr, p.DType()), grad)))
	}
	o.step.SetValueGraph(AddScalar(step, 1))
}

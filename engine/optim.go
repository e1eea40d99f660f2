package engine

import (
	"fmt"

	"github.com/gomlx/gomlx/pkg/core/dtypes"
	. "github.com/gomlx/gomlx/pkg/core/graph"
	"github.com/gomlx/gomlx/pkg/core/tensors"
	"github.com/gomlx/gomlx/pkg/ml/context"

	"github.com/goselfsup/goselfsup/models/nn"
)

// SGD is PyTorch's torch.optim.SGD, in the graph:
//
//	g = grad + weight_decay * p
//	buf = g on the first step, else momentum * buf + (1 - dampening) * g
//	g = g + momentum * buf if nesterov, else buf
//	p = p - lr * g
//
// with mmengine's per-parameter decay: weight_decay * norm_decay_mult for normalisation
// parameters, * bias_decay_mult for other biases. The momentum buffers are variables named
// "optimizer.momentum_buffer.<parameter>" and are saved with checkpoints.
type SGD struct {
	Momentum, Dampening, WeightDecay float64
	Nesterov                         bool
	NormDecayMult, BiasDecayMult     float64

	params  []*context.Variable
	kinds   []nn.ParamKind
	buffers []*context.Variable
	step    *context.Variable
}

// NewSGD creates the optimizer state for the trainable variables of the scope's context.
func NewSGD(c *SGDConfig, w *OptimWrapperConfig, scope *nn.Scope) (*SGD, error) {
	o := &SGD{Momentum: c.Momentum, Dampening: c.Dampening, WeightDecay: c.WeightDecay, Nesterov: c.Nesterov,
		NormDecayMult: 1, BiasDecayMult: 1}
	if w.ParamwiseCfg.NormDecayMult != nil {
		o.NormDecayMult = *w.ParamwiseCfg.NormDecayMult
	}
	if w.ParamwiseCfg.BiasDecayMult != nil {
		o.BiasDecayMult = *w.ParamwiseCfg.BiasDecayMult
	}
	if w.ClipGrad != nil || w.AccumulativeCounts > 1 {
		return nil, fmt.Errorf("optim_wrapper: clip_grad and accumulative_counts are not supported yet")
	}
	ctx := scope.Context()
	state := ctx.InAbsPath("/optimizer/momentum_buffer").Checked(false)
	for v := range ctx.IterVariables() {
		if !v.Trainable {
			continue
		}
		kind, ok := scope.Kind(v)
		if !ok {
			return nil, fmt.Errorf("optimizer: parameter %s has no kind", nn.TorchName(v))
		}
		o.params = append(o.params, v)
		o.kinds = append(o.kinds, kind)
		if o.Momentum != 0 {
			buf := state.VariableWithValue(nn.TorchName(v), tensors.FromShape(v.Shape()))
			buf.SetTrainable(false)
			o.buffers = append(o.buffers, buf)
		}
	}
	if len(o.params) == 0 {
		return nil, fmt.Errorf("optimizer: the model has no trainable parameters")
	}
	o.step = ctx.InAbsPath("/optimizer").Checked(false).VariableWithValue("step", int64(0))
	o.step.SetTrainable(false)
	return o, nil
}

// Params are the parameters the optimizer updates.
func (o *SGD) Params() []*context.Variable { return o.params }

func (o *SGD) decay(k nn.ParamKind) float64 {
	switch k {
	case nn.Norm:
		return o.WeightDecay * o.NormDecayMult
	case nn.Bias:
		return o.WeightDecay * o.BiasDecayMult
	}
	return o.WeightDecay
}

// Update adds to the graph the gradient of loss and the update of every parameter, with
// the learning rate lr (a scalar node, so that schedules need no recompilation).
func (o *SGD) Update(loss, lr *Node) {
	g := loss.Graph()
	nodes := make([]*Node, len(o.params))
	for i, v := range o.params {
		nodes[i] = v.ValueGraph(g)
	}
	grads := Gradient(loss, nodes...)
	step := o.step.ValueGraph(g)
	first := Equal(step, ScalarZero(g, dtypes.Int64))
	for i, v := range o.params {
		p, grad := nodes[i], grads[i]
		if wd := o.decay(o.kinds[i]); wd != 0 {
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
		v.SetValueGraph(Sub(p, Mul(ConvertDType(lr, p.DType()), grad)))
	}
	o.step.SetValueGraph(AddScalar(step, 1))
}

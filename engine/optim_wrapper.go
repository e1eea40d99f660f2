package engine

import (
	"errors"
	"fmt"

	"github.com/gomlx/gomlx/backends"
	. "github.com/gomlx/gomlx/pkg/core/graph"

	"github.com/goselfsup/goselfsup/models/nn"
	"github.com/goselfsup/goselfsup/registry"
)

func init() {
	registry.Add(registry.OptimWrappers, "OptimWrapper", "an optimizer with per-parameter decay multipliers and gradient clipping",
		func() *OptimWrapperConfig { return &OptimWrapperConfig{AccumulativeCounts: 1} })
}

// OptimWrapperConfig is mmengine's OptimWrapper: an optimizer plus per-parameter decay
// multipliers (its DefaultOptimWrapperConstructor's paramwise_cfg) and gradient clipping.
type OptimWrapperConfig struct {
	Optimizer          registry.Spec `toml:"optimizer" registry:"optimizers" doc:"the optimizer"`
	ParamwiseCfg       ParamwiseCfg  `toml:"paramwise_cfg" doc:"weight-decay multipliers by kind of parameter"`
	ClipGrad           *ClipGrad     `toml:"clip_grad" doc:"clip the global gradient norm"`
	AccumulativeCounts int           `toml:"accumulative_counts" doc:"iterations whose gradients are accumulated (only 1)"`
}

// ParamwiseCfg scales the weight decay of some parameters, as mmengine's
// DefaultOptimWrapperConstructor. Absent multipliers are 1.
type ParamwiseCfg struct {
	NormDecayMult *float64 `toml:"norm_decay_mult" doc:"weight-decay multiplier of normalisation weights and biases"`
	BiasDecayMult *float64 `toml:"bias_decay_mult" doc:"weight-decay multiplier of the other biases"`
}

// ClipGrad clips the global gradient norm, as torch.nn.utils.clip_grad_norm_.
type ClipGrad struct {
	MaxNorm  float64 `toml:"max_norm" doc:"the largest global norm of the gradients"`
	NormType float64 `toml:"norm_type" doc:"the norm (only 2)"`
}

func (c *ClipGrad) Validate() error {
	var errs []error
	if c.MaxNorm <= 0 {
		errs = append(errs, registry.FieldErrorf("max_norm", "must be positive, got %g", c.MaxNorm))
	}
	if c.NormType != 0 && c.NormType != 2 {
		errs = append(errs, registry.FieldErrorf("norm_type", "only the L2 norm (2) is supported, got %g", c.NormType))
	}
	return errors.Join(errs...)
}

func (c *OptimWrapperConfig) Validate() error {
	var errs []error
	if c.Optimizer.IsZero() {
		errs = append(errs, registry.FieldErrorf("optimizer", "is required"))
	}
	if c.AccumulativeCounts != 1 {
		errs = append(errs, registry.FieldErrorf("accumulative_counts",
			"gradient accumulation is not supported: keep 1 and raise train_dataloader.batch_size, got %d", c.AccumulativeCounts))
	}
	return errors.Join(errs...)
}

// Build builds the optimizer for the trainable parameters of the model's scope (an
// *nn.Scope of the Env).
func (c *OptimWrapperConfig) Build(env *registry.Env) (any, error) {
	scope, err := registry.Need[*nn.Scope](env)
	if err != nil {
		return nil, err
	}
	opt, err := registry.Build[Optimizer](env, c.Optimizer)
	if err != nil {
		return nil, err
	}
	normMult, biasMult := 1.0, 1.0
	if c.ParamwiseCfg.NormDecayMult != nil {
		normMult = *c.ParamwiseCfg.NormDecayMult
	}
	if c.ParamwiseCfg.BiasDecayMult != nil {
		biasMult = *c.ParamwiseCfg.BiasDecayMult
	}
	var params []Param
	for v := range scope.Context().IterVariables() {
		if !v.Trainable {
			continue
		}
		kind, ok := scope.Kind(v)
		if !ok {
			return nil, fmt.Errorf("parameter %s has no kind", nn.TorchName(v))
		}
		p := Param{Var: v, Name: nn.TorchName(v), DecayMult: 1}
		switch kind {
		case nn.Norm:
			p.DecayMult = normMult
		case nn.Bias:
			p.DecayMult = biasMult
		}
		params = append(params, p)
	}
	if len(params) == 0 {
		return nil, errors.New("the model has no trainable parameters")
	}
	if err := opt.Init(scope.Context(), params); err != nil {
		return nil, fmt.Errorf("%s: %w", c.Optimizer.Path, err)
	}
	w := &optimWrapper{opt: opt, params: params}
	if c.ClipGrad != nil {
		w.maxNorm = c.ClipGrad.MaxNorm
	}
	return w, nil
}

type optimWrapper struct {
	opt     Optimizer
	params  []Param
	maxNorm float64 // 0: no clipping
}

func (w *optimWrapper) LR() float64 { return w.opt.LR() }

func (w *optimWrapper) Step(loss, lr *Node) {
	g := loss.Graph()
	nodes := make([]*Node, len(w.params))
	for i, p := range w.params {
		nodes[i] = p.Var.ValueGraph(g)
	}
	grads := averageAcrossDevices(Gradient(loss, nodes...))
	if w.maxNorm > 0 {
		grads = clipByGlobalNorm(grads, w.maxNorm)
	}
	w.opt.Update(grads, lr)
}

// averageAcrossDevices averages the gradients of the devices of an SPMD step (each the
// gradient of its device's mean loss), in one all-reduce: the gradient of the mean loss
// of the global batch, as PyTorch's DistributedDataParallel computes it.
func averageAcrossDevices(grads []*Node) []*Node {
	g := grads[0].Graph()
	n := g.NumDevices()
	if n <= 1 {
		return grads
	}
	sums := g.Distributed().AllReduce(grads, backends.ReduceOpSum)
	for i, s := range sums {
		sums[i] = DivScalar(s, float64(n))
	}
	return sums
}

// clipByGlobalNorm scales grads by max_norm / (norm + 1e-6) when their global L2 norm
// exceeds max_norm, as torch.nn.utils.clip_grad_norm_.
func clipByGlobalNorm(grads []*Node, maxNorm float64) []*Node {
	var sq *Node
	for _, gr := range grads {
		s := ReduceAllSum(Square(ConvertDType(gr, grads[0].DType())))
		if sq == nil {
			sq = s
		} else {
			sq = Add(sq, s)
		}
	}
	norm := Sqrt(sq)
	coef := MinScalar(Div(Scalar(norm.Graph(), norm.DType(), maxNorm), AddScalar(norm, 1e-6)), 1)
	out := make([]*Node, len(grads))
	for i, gr := range grads {
		out[i] = Mul(gr, ConvertDType(coef, gr.DType()))
	}
	return out
}

package engine

import (
	. "github.com/gomlx/gomlx/pkg/core/graph"
	gctx "github.com/gomlx/gomlx/pkg/ml/context"
)

// Param is a trainable parameter as an optimizer sees it.
type Param struct {
	Var *gctx.Variable
	// Name is the parameter's PyTorch-style name, such as "backbone.conv1.weight".
	Name string
	// DecayMult scales the optimizer's weight decay for this parameter (mmengine's
	// paramwise_cfg: norm_decay_mult, bias_decay_mult).
	DecayMult float64
}

// Optimizer is a component of the "optimizers" namespace: it updates parameters from their
// gradients inside the train step's graph. Its state (momentum buffers, moment estimates,
// step counts) lives in variables under the context's "/optimizer" scope, so that
// checkpoints save it and load_from leaves it out.
type Optimizer interface {
	// LR is the base learning rate, which the parameter schedulers scale.
	LR() float64
	// Init creates the optimizer's state for params, before the train step is compiled.
	Init(ctx *gctx.Context, params []Param) error
	// Update adds to the graph the new value of every parameter of Init, given their
	// gradients in the same order and the learning rate lr (a scalar node, so that a
	// schedule needs no recompilation).
	Update(grads []*Node, lr *Node)
}

// OptimWrapper is a component of the "optim_wrappers" namespace (mmengine's OptimWrapper):
// it turns a loss into parameter updates, computing the gradients and handing them to its
// optimizer.
type OptimWrapper interface {
	// LR is the base learning rate of the wrapped optimizer.
	LR() float64
	// Step adds to the graph of loss the gradients of the trainable parameters and their
	// update with learning rate lr.
	Step(loss, lr *Node)
}

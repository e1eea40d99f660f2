package engine

import (
	"math"
	"testing"

	. "github.com/gomlx/gomlx/pkg/core/graph"
	"github.com/gomlx/gomlx/pkg/core/tensors"
	"github.com/gomlx/gomlx/pkg/ml/context"

	"github.com/goselfsup/goselfsup/engine/backend"
	"github.com/goselfsup/goselfsup/models/nn"
	"github.com/goselfsup/goselfsup/registry"
)

// torchSGD is PyTorch's SGD update rule for one parameter, written out as the PyTorch
// documentation gives it.
type torchSGD struct {
	lr, momentum, dampening, wd float64
	nesterov                    bool
	buf                         []float64
}

func (o *torchSGD) step(p, grad []float64) {
	g := make([]float64, len(p))
	for i := range p {
		g[i] = grad[i] + o.wd*p[i]
	}
	if o.momentum != 0 {
		if o.buf == nil {
			o.buf = append([]float64(nil), g...)
		} else {
			for i := range g {
				o.buf[i] = o.momentum*o.buf[i] + (1-o.dampening)*g[i]
			}
		}
		for i := range g {
			if o.nesterov {
				g[i] += o.momentum * o.buf[i]
			} else {
				g[i] = o.buf[i]
			}
		}
	}
	for i := range p {
		p[i] -= o.lr * g[i]
	}
}

func TestSGDMatchesPyTorch(t *testing.T) {
	b, err := backend.New("go")
	if err != nil {
		t.Fatal(err)
	}
	// loss = Σ a_i p_i² / 2 + Σ c_i q_i over a conv-like weight p and a norm weight q, so the
	// gradients are a*p and c.
	a := []float64{0.5, 2, -1, 3}
	c := []float64{1, -2}
	p0 := []float64{1, -1, 0.5, 2}
	q0 := []float64{0.3, -0.7}
	for _, tc := range []struct {
		name string
		cfg  SGDConfig
		norm float64 // norm_decay_mult
	}{
		{"plain", SGDConfig{LR: 0.1}, 1},
		{"momentum and decay", SGDConfig{LR: 0.1, Momentum: 0.9, WeightDecay: 0.01}, 1},
		{"dampening", SGDConfig{LR: 0.1, Momentum: 0.9, Dampening: 0.5, WeightDecay: 0.01}, 1},
		{"nesterov, no decay on norms", SGDConfig{LR: 0.05, Momentum: 0.9, WeightDecay: 0.1, Nesterov: true}, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.New()
			s := nn.NewScope(ctx, 1)
			conv := nn.NewConv2d(s.In("conv"), 1, 1, 2, 1, 0, false) // a 2x2x1x1 weight: 4 values
			bn := nn.NewBatchNorm2d(s.In("bn"), 2, nn.DefaultNorm)
			conv.Weight.MustSetValue(tensors.FromFlatDataAndDimensions(f32(p0), 2, 2, 1, 1))
			bn.Weight.MustSetValue(tensors.FromFlatDataAndDimensions(f32(q0), 2))
			bn.Bias.SetTrainable(false)
			norm := tc.norm
			cfg := tc.cfg
			w := &OptimWrapperConfig{Optimizer: registry.NewSpec(registry.Optimizers, "SGD", map[string]any{
				"lr": cfg.LR, "momentum": cfg.Momentum, "dampening": cfg.Dampening,
				"weight_decay": cfg.WeightDecay, "nesterov": cfg.Nesterov,
			}), ParamwiseCfg: ParamwiseCfg{NormDecayMult: &norm}, AccumulativeCounts: 1}
			built, err := w.Build(registry.With(nil, s))
			if err != nil {
				t.Fatal(err)
			}
			o := built.(OptimWrapper)
			exec := context.MustNewExec(b, ctx, func(ctx *context.Context, lr *Node) *Node {
				g := lr.Graph()
				p := Reshape(conv.Weight.ValueGraph(g), 4)
				q := bn.Weight.ValueGraph(g)
				loss := Add(MulScalar(ReduceAllSum(Mul(Const(g, f32(a)), Mul(p, p))), 0.5),
					ReduceAllSum(Mul(Const(g, f32(c)), q)))
				o.Step(loss, lr)
				return loss
			})
			want := &torchSGD{lr: tc.cfg.LR, momentum: tc.cfg.Momentum, dampening: tc.cfg.Dampening, wd: tc.cfg.WeightDecay, nesterov: tc.cfg.Nesterov}
			wantNorm := *want
			wantNorm.wd *= norm
			p, q := append([]float64(nil), p0...), append([]float64(nil), q0...)
			for step := 0; step < 2; step++ {
				gp := make([]float64, 4)
				for i := range p {
					gp[i] = a[i] * p[i]
				}
				want.step(p, gp)
				wantNorm.step(q, c)
				exec.MustExec(float32(tc.cfg.LR))
			}
			gotP := tensors.MustCopyFlatData[float32](conv.Weight.MustValue())
			gotQ := tensors.MustCopyFlatData[float32](bn.Weight.MustValue())
			for i := range p {
				if math.Abs(float64(gotP[i])-p[i]) > 1e-6 {
					t.Errorf("weight after two steps = %v, want %v", gotP, p)
					break
				}
			}
			for i := range q {
				if math.Abs(float64(gotQ[i])-q[i]) > 1e-6 {
					t.Errorf("norm weight after two steps = %v, want %v", gotQ, q)
					break
				}
			}
		})
	}
}

func f32(v []float64) []float32 {
	out := make([]float32, len(v))
	for i, x := range v {
		out[i] = float32(x)
	}
	return out
}

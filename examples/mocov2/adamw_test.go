package mocov2_test

import (
	"math"
	"testing"

	"github.com/gomlx/gomlx/pkg/core/dtypes"
	. "github.com/gomlx/gomlx/pkg/core/graph"
	"github.com/gomlx/gomlx/pkg/core/tensors"
	"github.com/gomlx/gomlx/pkg/ml/context"

	"github.com/goselfsup/goselfsup/engine"
	"github.com/goselfsup/goselfsup/engine/backend"
	"github.com/goselfsup/goselfsup/examples/mocov2"
	"github.com/goselfsup/goselfsup/registry"
)

// adamwReference is torch.optim.AdamW written out in float64 for one parameter vector,
// from PyTorch's documented algorithm (decoupled decay first, then the bias-corrected Adam
// step), independently of the graph code.
type adamwReference struct {
	lr, b1, b2, eps, wd float64
	m, v                []float64
	t                   int
}

func (o *adamwReference) step(p, g []float64, lr float64) {
	if o.m == nil {
		o.m, o.v = make([]float64, len(p)), make([]float64, len(p))
	}
	o.t++
	bc1 := 1 - math.Pow(o.b1, float64(o.t))
	bc2 := 1 - math.Pow(o.b2, float64(o.t))
	for i := range p {
		p[i] *= 1 - lr*o.wd
		o.m[i] = o.b1*o.m[i] + (1-o.b1)*g[i]
		o.v[i] = o.b2*o.v[i] + (1-o.b2)*g[i]*g[i]
		denom := math.Sqrt(o.v[i])/math.Sqrt(bc2) + o.eps
		p[i] -= lr / bc1 * o.m[i] / denom
	}
}

// The loss is sum(a*w) + 0.5*sum(c*w²) for w and u, so the gradient a + c*w depends on the
// step; u has no weight decay (DecayMult 0, as a bias under bias_decay_mult = 0).
func TestAdamWMatchesAReferenceLoop(t *testing.T) {
	a := []float64{0.5, -1.5, 2.0}
	c := []float64{1.0, 0.25, 3.0}
	w0 := []float64{1.0, -2.0, 0.5}
	u0 := []float64{0.3, 0.1, -0.7}
	lrs := []float64{0.1, 0.1, 0.05, 0.2, 0.01}

	bk, err := backend.New("go")
	if err != nil {
		t.Fatal(err)
	}
	spec := registry.NewSpec(registry.Optimizers, "AdamW", map[string]any{
		"lr": 0.1, "betas": []any{0.8, 0.95}, "eps": 1e-6, "weight_decay": 0.3})
	opt, err := registry.Build[engine.Optimizer](nil, spec)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.New()
	w := ctx.In("net").VariableWithValue("w", w0)
	u := ctx.In("net").VariableWithValue("u", u0)
	if err := opt.Init(ctx, []engine.Param{{Var: w, Name: "net.w", DecayMult: 1}, {Var: u, Name: "net.u", DecayMult: 0}}); err != nil {
		t.Fatal(err)
	}
	exec := context.MustNewExec(bk, ctx, func(ctx *context.Context, lr *Node) *Node {
		g := lr.Graph()
		coefA, coefC := Const(g, a), Const(g, c)
		loss := ScalarZero(g, dtypes.Float64)
		nodes := []*Node{w.ValueGraph(g), u.ValueGraph(g)}
		for _, x := range nodes {
			loss = Add(loss, Add(ReduceAllSum(Mul(coefA, x)), MulScalar(ReduceAllSum(Mul(coefC, Mul(x, x))), 0.5)))
		}
		opt.Update(Gradient(loss, nodes...), lr)
		return loss
	})

	refW := &adamwReference{b1: 0.8, b2: 0.95, eps: 1e-6, wd: 0.3}
	refU := &adamwReference{b1: 0.8, b2: 0.95, eps: 1e-6, wd: 0}
	pw, pu := append([]float64{}, w0...), append([]float64{}, u0...)
	grad := func(p []float64) []float64 {
		g := make([]float64, len(p))
		for i := range p {
			g[i] = a[i] + c[i]*p[i]
		}
		return g
	}
	for step, lr := range lrs {
		if _, err := exec.Exec(lr); err != nil {
			t.Fatal(err)
		}
		gw, gu := grad(pw), grad(pu)
		refW.step(pw, gw, lr)
		refU.step(pu, gu, lr)
		for _, chk := range []struct {
			name string
			v    *context.Variable
			want []float64
		}{{"w", w, pw}, {"u", u, pu}} {
			got := tensors.MustCopyFlatData[float64](chk.v.MustValue())
			for i := range got {
				if math.Abs(got[i]-chk.want[i]) > 1e-12 {
					t.Fatalf("step %d: %s = %v, want %v", step+1, chk.name, got, chk.want)
				}
			}
		}
	}
	// The state is where checkpoints find it.
	names := map[string]bool{}
	for v := range ctx.IterVariables() {
		names[v.ScopeAndName()] = true
	}
	for _, n := range []string{"/optimizer/exp_avg/net.w", "/optimizer/exp_avg_sq/net.u", "/optimizer/step"} {
		if !names[n] {
			t.Errorf("no variable %s among %v", n, names)
		}
	}
}

func TestAdamWConfigChecks(t *testing.T) {
	for _, table := range []map[string]any{
		{"lr": 0.0}, {"betas": []any{0.9, 1.0}}, {"eps": 0.0}, {"weight_decay": -1.0}, {"amsgrad": true},
	} {
		if _, err := registry.Build[engine.Optimizer](nil, registry.NewSpec(registry.Optimizers, "AdamW", table)); err == nil {
			t.Errorf("%v: no error", table)
		}
	}
	_ = mocov2.AdamWConfig{}
}

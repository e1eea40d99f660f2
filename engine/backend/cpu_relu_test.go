package backend

import (
	"math/rand/v2"
	"testing"

	"github.com/gomlx/gomlx/pkg/core/dtypes"
	. "github.com/gomlx/gomlx/pkg/core/graph"
)

// relu is models/nn.ReLU: x·(x > 0).
func relu(x *Node) *Node { return Mul(x, ConvertDType(GreaterThan(x, ZerosLike(x)), x.DType())) }

// TestReLUFusions runs graphs with the ReLU patterns (a ReLU of batch norm's output, a ReLU of
// a residual sum, their gradients) on the CPU backend with and without native kernels, and
// checks that the results agree and that the fusions happened: the ReLU steps that run are
// only those that no batch norm step absorbed.
func TestReLUFusions(t *testing.T) {
	on := pureGo(t)
	off, err := New("go:kernels=off")
	if err != nil {
		t.Fatal(err)
	}
	prof := ProfileOf(on)
	rng := rand.New(rand.NewPCG(9, 10))
	x := randTensor(rng, 3, 5, 5, 7)
	scale, offset := randTensor(rng, 7), randTensor(rng, 7)
	w := randTensor(rng, 3, 5, 5, 7)
	bn := func(x, s, o *Node) *Node {
		y, _, _ := InternalBatchNormForTraining(x, s, o, 1e-5, -1)
		return y
	}
	for _, tc := range []struct {
		name      string
		fn        func(x, s, o, w *Node) []*Node
		reluSteps int // ReLU host steps per execution, with kernels
	}{
		{"bn-relu", func(x, s, o, w *Node) []*Node {
			// Forward ReLU into the batch norm step, its gradient into batch norm's gradient.
			loss := wsum(relu(bn(x, s, o)), 21)
			return append([]*Node{loss}, Gradient(loss, x, s, o)...)
		}, 0},
		{"bn-relu-output", func(x, s, o, w *Node) []*Node {
			// Batch norm's output is an output of the graph: the forward ReLU stays a step.
			y := bn(x, s, o)
			r := relu(y)
			loss := wsum(r, 22)
			return append([]*Node{loss, y, r}, Gradient(loss, x, s, o)...)
		}, 1},
		{"bn-relu-read", func(x, s, o, w *Node) []*Node {
			// Batch norm's output is read by another op: the forward ReLU stays a step, and so
			// does the ReLU's gradient, which is added to the other's before batch norm's.
			y := bn(x, s, o)
			loss := Add(wsum(relu(y), 23), wsum(y, 24))
			return append([]*Node{loss}, Gradient(loss, x, s, o)...)
		}, 2},
		{"residual", func(x, s, o, w *Node) []*Node {
			// relu(relu(bn(x))·w + x): the outer ReLU and the gradient of its input, which
			// goes both to batch norm and to x, stay steps.
			r := relu(Add(Mul(relu(bn(x, s, o)), w), x))
			loss := wsum(r, 25)
			return append([]*Node{loss, r}, Gradient(loss, x, s, o, w)...)
		}, 2},
	} {
		for _, dt := range []dtypes.DType{dtypes.Float64, dtypes.Float32} {
			t.Run(tc.name+"/"+dt.String(), func(t *testing.T) {
				fn := func(x, s, o, w *Node) []*Node {
					outs := tc.fn(ConvertDType(x, dt), ConvertDType(s, dt), ConvertDType(o, dt), ConvertDType(w, dt))
					for i, v := range outs {
						outs[i] = ConvertDType(v, dtypes.Float64)
					}
					return outs
				}
				want := MustNewExec(off, fn).MustExec(cl(x), cl(scale), cl(offset), cl(w))
				exec := MustNewExec(on, fn)
				exec.MustExec(cl(x), cl(scale), cl(offset), cl(w)) // compiles
				prof.Reset()
				got := exec.MustExec(cl(x), cl(scale), cl(offset), cl(w))
				tol := 1e-9
				if dt == dtypes.Float32 {
					tol = 1e-4
				}
				for i := range want {
					assertClose(t, tc.name, flat(got[i]), flat(want[i]), tol)
				}
				steps := 0
				for _, e := range prof.Entries() {
					if e.Kind == kindReLU {
						steps = e.Calls
					}
				}
				if steps != tc.reluSteps {
					t.Errorf("%d ReLU steps ran, want %d", steps, tc.reluSteps)
				}
			})
		}
	}
}

// TestReLUPatternsMiss checks ops that look like the ReLU but are not: a mask of another
// value's sign is still fused (it is x·(a > 0)), a comparison with a non-zero constant is not.
func TestReLUPatternsMiss(t *testing.T) {
	on := pureGo(t)
	off, err := New("go:kernels=off")
	if err != nil {
		t.Fatal(err)
	}
	prof := ProfileOf(on)
	rng := rand.New(rand.NewPCG(11, 12))
	a, x := randTensor(rng, 4, 9), randTensor(rng, 4, 9)
	for _, tc := range []struct {
		name      string
		fn        func(a, x *Node) *Node
		reluSteps int
	}{
		{"mask-of-other", func(a, x *Node) *Node { return Mul(ConvertDType(GreaterThan(a, ZerosLike(a)), a.DType()), x) }, 1},
		{"threshold", func(a, x *Node) *Node {
			return Mul(x, ConvertDType(GreaterThan(a, OnesLike(a)), a.DType()))
		}, 0},
		{"less-than", func(a, x *Node) *Node { return Mul(x, ConvertDType(LessThan(a, ZerosLike(a)), a.DType())) }, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			want := MustExecOnce(off, tc.fn, cl(a), cl(x))
			prof.Reset()
			got := MustExecOnce(on, tc.fn, cl(a), cl(x))
			assertClose(t, tc.name, flat(got), flat(want), 0)
			steps := 0
			for _, e := range prof.Entries() {
				if e.Kind == kindReLU {
					steps = e.Calls
				}
			}
			if steps != tc.reluSteps {
				t.Errorf("%d ReLU steps ran, want %d", steps, tc.reluSteps)
			}
		})
	}
}

// wsum is weighted in y's dtype.
func wsum(y *Node, seed uint64) *Node {
	rng := rand.New(rand.NewPCG(seed, 7))
	w := randTensor(rng, y.Shape().Dimensions...)
	return ReduceAllSum(Mul(y, ConvertDType(Const(y.Graph(), w), y.DType())))
}

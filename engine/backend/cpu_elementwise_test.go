package backend

import (
	"math"
	"math/rand/v2"
	"testing"

	"github.com/gomlx/gomlx/pkg/core/dtypes"
	. "github.com/gomlx/gomlx/pkg/core/graph"
	"github.com/gomlx/gomlx/pkg/core/tensors"
)

// TestElementWise runs binary ops with per-channel, scalar and same-shape operands, sums over
// every axis but the last, and SyncBN's statistics with their gradients on the CPU engine and
// on the pure-Go backend (kernels=off), and checks that the results are the same bit for bit,
// in float32 and float64, and which ran as element-wise steps.
func TestElementWise(t *testing.T) {
	on := pureGo(t)
	off, err := New("go:kernels=off")
	if err != nil {
		t.Fatal(err)
	}
	prof := ProfileOf(on)
	rng := rand.New(rand.NewPCG(21, 22))
	const n, h, w, c = 5, 8, 8, 64 // 20,480 elements: above minElementWise
	x, y := randTensor(rng, n, h, w, c), randTensor(rng, n, h, w, c)
	vec, s := randTensor(rng, c), tensors.FromScalar(1.75)
	small := randTensor(rng, 2, 3, 4, c) // below minElementWise
	type binary func(a, b *Node) *Node
	ops := map[string]binary{"Add": Add, "Sub": Sub, "Mul": Mul, "Div": Div}
	bcast := func(v, like *Node) *Node {
		return BroadcastToDims(ExpandLeftToRank(v, like.Rank()), like.Shape().Dimensions...)
	}
	type testCase struct {
		name string
		fn   func(x, y, v, s, small *Node) []*Node
		// native: whether every op under test runs as an element-wise step (else none does).
		native bool
	}
	var cases []testCase
	for name, f := range ops {
		cases = append(cases,
			testCase{name + "/same-shape", func(x, y, v, s, _ *Node) []*Node { return []*Node{f(x, y)} }, true},
			testCase{name + "/vector-right", func(x, y, v, s, _ *Node) []*Node { return []*Node{f(x, ExpandLeftToRank(v, 4))} }, true},
			testCase{name + "/vector-left", func(x, y, v, s, _ *Node) []*Node { return []*Node{f(ExpandLeftToRank(v, 4), x)} }, true},
			testCase{name + "/broadcast-right", func(x, y, v, s, _ *Node) []*Node { return []*Node{f(x, bcast(v, x))} }, true},
			testCase{name + "/broadcast-left", func(x, y, v, s, _ *Node) []*Node { return []*Node{f(bcast(v, x), x)} }, true},
			testCase{name + "/scalar-right", func(x, y, v, s, _ *Node) []*Node { return []*Node{f(x, s)} }, true},
			testCase{name + "/scalar-left", func(x, y, v, s, _ *Node) []*Node { return []*Node{f(s, x)} }, true},
			testCase{name + "/broadcast-scalar", func(x, y, v, s, _ *Node) []*Node { return []*Node{f(bcast(s, x), x)} }, true},
			// A vector broadcast along another axis: the broadcast runs in the pure-Go backend,
			// and the op on its full-shape result as a step.
			testCase{name + "/middle-axis", func(x, y, v, s, _ *Node) []*Node {
				return []*Node{f(x, BroadcastToDims(Reshape(Slice(v, AxisRange(0, w)), 1, 1, w, 1), n, h, w, c))}
			}, true},
			// Not element-wise steps: a vector along another axis that the op broadcasts itself,
			// a small tensor.
			testCase{name + "/other-axis", func(x, y, v, s, _ *Node) []*Node {
				return []*Node{f(x, Reshape(Slice(v, AxisRange(0, n)), n, 1, 1, 1))}
			}, false},
			testCase{name + "/small", func(x, y, v, s, small *Node) []*Node { return []*Node{f(small, ExpandLeftToRank(v, 4))} }, false},
		)
	}
	cases = append(cases,
		testCase{"ReduceSum/rows", func(x, y, v, s, _ *Node) []*Node {
			return []*Node{ReduceSum(x, 0, 1, 2), ReduceSum(x, 2, 0, 1), ReduceSum(Reshape(x, n*h*w, c), 0)}
		}, true},
		testCase{"ReduceSum/other-axes", func(x, y, v, s, _ *Node) []*Node {
			return []*Node{ReduceSum(x, 1, 2), ReduceSum(x, 0, 1, 3), ReduceSum(x, 3)}
		}, false},
		testCase{"ReduceSum/small", func(x, y, v, s, small *Node) []*Node { return []*Node{ReduceSum(small, 0, 1, 2)} }, false},
		testCase{"SyncBN", func(x, y, v, s, _ *Node) []*Node {
			// models/nn's syncStatistics on one device, with its gradients.
			cnt := float64(n * h * w)
			mean := DivScalar(ReduceSum(x, 0, 1, 2), cnt)
			centered := Sub(x, ExpandLeftToRank(mean, 4))
			variance := DivScalar(ReduceSum(Square(centered), 0, 1, 2), cnt)
			inv := Div(v, Sqrt(AddScalar(variance, 1e-5)))
			out := Add(Mul(centered, ExpandLeftToRank(inv, 4)), ExpandLeftToRank(s, 4))
			loss := ReduceAllSum(Mul(out, y))
			return append([]*Node{out, loss}, Gradient(loss, x, v)...)
		}, true},
	)
	for _, tc := range cases {
		for _, dt := range []dtypes.DType{dtypes.Float64, dtypes.Float32} {
			t.Run(tc.name+"/"+dt.String(), func(t *testing.T) {
				fn := func(x, y, v, s, small *Node) []*Node {
					outs := tc.fn(ConvertDType(x, dt), ConvertDType(y, dt), ConvertDType(v, dt), ConvertDType(s, dt), ConvertDType(small, dt))
					for i, o := range outs {
						outs[i] = ConvertDType(o, dtypes.Float64)
					}
					return outs
				}
				args := func() []any { return []any{cl(x), cl(y), cl(vec), cl(s), cl(small)} }
				want := MustNewExec(off, fn).MustExec(args()...)
				prof.Reset()
				got := MustNewExec(on, fn).MustExec(args()...)
				for i := range want {
					assertSameBits(t, tc.name, flat(got[i]), flat(want[i]))
				}
				steps := 0
				for _, e := range prof.Entries() {
					if e.Kind == kindElementWise {
						steps = e.Calls
					}
				}
				if tc.native && steps == 0 {
					t.Errorf("no element-wise steps ran")
				}
				if !tc.native && steps != 0 {
					t.Errorf("%d element-wise steps ran, want none", steps)
				}
			})
		}
	}
}

func assertSameBits(t *testing.T, what string, got, want []float64) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: %d values, want %d", what, len(got), len(want))
	}
	for i := range got {
		if math.Float64bits(got[i]) != math.Float64bits(want[i]) {
			t.Fatalf("%s: value %d is %v, want %v (bit for bit)", what, i, got[i], want[i])
		}
	}
}

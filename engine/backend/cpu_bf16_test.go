package backend

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/gomlx/gomlx/pkg/core/dtypes"
	"github.com/gomlx/gomlx/pkg/core/dtypes/bfloat16"
	. "github.com/gomlx/gomlx/pkg/core/graph"
	"github.com/gomlx/gomlx/pkg/core/tensors"
)

// refRoundBF16 rounds to the nearest bfloat16, ties to even, by comparing the distances to
// the two bfloat16 neighbours in float64: independent of the engine's bit trick. (Finite
// values that stay finite only.)
func refRoundBF16(f float32) float32 {
	lo := math.Float32frombits(math.Float32bits(f) &^ 0xffff) // towards zero
	if lo == f {
		return f
	}
	hi := math.Float32frombits(math.Float32bits(lo) + 0x10000) // away from zero
	dlo, dhi := math.Abs(float64(f)-float64(lo)), math.Abs(float64(hi)-float64(f))
	switch {
	case dlo < dhi:
		return lo
	case dhi < dlo:
		return hi
	}
	if math.Float32bits(lo)&0x10000 == 0 { // the even one
		return lo
	}
	return hi
}

func TestRoundBF16(t *testing.T) {
	one := float32(1)
	for _, tc := range []struct {
		in   float32
		want uint16
	}{
		{one, 0x3f80},
		{one + 1.0/256, 0x3f80},             // halfway between 1 and 1+2^-7: to the even 1
		{one + 3.0/256, 0x3f82},             // halfway between 1+2^-7 and 1+2^-6: to the even 1+2^-6
		{one + 1.0/256 + 1.0/65536, 0x3f81}, // just above halfway: up
		{-(one + 3.0/256), 0xbf82},
		{math.MaxFloat32, 0x7f80}, // beyond the largest bfloat16: +Inf
		{float32(math.Inf(-1)), 0xff80},
		{0, 0},
	} {
		if got := roundBF16(tc.in); got.Bits() != tc.want {
			t.Errorf("roundBF16(%g) = %#04x, want %#04x", tc.in, got.Bits(), tc.want)
		}
	}
	if f := roundBF16(float32(math.NaN())).Float32(); !math.IsNaN(float64(f)) {
		t.Errorf("roundBF16(NaN) = %g", f)
	}
	rng := rand.New(rand.NewPCG(1, 2))
	for range 100000 {
		f := float32(rng.NormFloat64() * math.Exp(rng.NormFloat64()*10))
		if got, want := roundBF16(f).Float32(), refRoundBF16(f); got != want {
			t.Fatalf("roundBF16(%g) = %g, want %g", f, got, want)
		}
	}
}

// roundedTensor rounds t's values (float64) to bfloat16 with refRoundBF16, as a float32
// tensor.
func roundedTensor(t *tensors.Tensor) *tensors.Tensor {
	var v []float64
	if t.DType() == dtypes.Float32 {
		v = flat32(t)
	} else {
		v = flat(t)
	}
	out := make([]float32, len(v))
	for i, x := range v {
		out[i] = refRoundBF16(float32(x))
	}
	return tensors.FromFlatDataAndDimensions(out, t.Shape().Dimensions...)
}

func roundedValues(v []float64) []float64 {
	out := make([]float64, len(v))
	for i, x := range v {
		out[i] = float64(refRoundBF16(float32(x)))
	}
	return out
}

// assertBF16Exact checks that got (bfloat16 values read as float32) equals want rounded to
// bfloat16, bit for bit.
func assertBF16Exact(t *testing.T, what string, got *tensors.Tensor, want []float64) {
	t.Helper()
	if got.DType() != dtypes.Float32 {
		t.Fatalf("%s: dtype %s, want float32", what, got.DType())
	}
	assertClose(t, what, flat32(got), roundedValues(want), 0)
}

// flat32 returns a float32 tensor's values as float64.
func flat32(t *tensors.Tensor) []float64 {
	v := tensors.MustCopyFlatData[float32](t)
	out := make([]float64, len(v))
	for i, x := range v {
		out[i] = float64(x)
	}
	return out
}

// TestBF16ConvGeneral checks that a bfloat16 convolution and both its gradients, on the CPU
// engine, equal the float32 computation on the same (bfloat16) values rounded to bfloat16,
// and that they run on the native kernels.
func TestBF16ConvGeneral(t *testing.T) {
	b := pureGo(t)
	rng := rand.New(rand.NewPCG(3, 4))
	for _, tc := range []struct{ kh, stride, groups int }{{3, 1, 1}, {3, 2, 1}, {1, 2, 1}, {3, 1, 2}} {
		t.Run(fmt.Sprintf("%dx%d/%d/g%d", tc.kh, tc.kh, tc.stride, tc.groups), func(t *testing.T) {
			x, k := randTensor(rng, 2, 9, 8, 4), randTensor(rng, tc.kh, tc.kh, 4/tc.groups, 6)
			// Cotangents that are bfloat16 values already, so that the gradient's own
			// conversion to bfloat16 is exact in both computations.
			cot := roundedTensor(randTensor(rng, 2, (9+2*(tc.kh/2)-tc.kh)/tc.stride+1, (8+2*(tc.kh/2)-tc.kh)/tc.stride+1, 6))
			conv := func(x, k *Node) *Node {
				p := [2]int{tc.kh / 2, tc.kh / 2}
				return Convolve(x, k).StridePerAxis(tc.stride, tc.stride).PaddingPerDim([][2]int{p, p}).
					ChannelGroupCount(tc.groups).Done()
			}
			// The graph a model under autocast builds: float32 in, bfloat16 inside.
			mixed := func(x, k, cot *Node) []*Node {
				y := ConvertDType(conv(ConvertDType(x, dtypes.BFloat16), ConvertDType(k, dtypes.BFloat16)), dtypes.Float32)
				loss := ReduceAllSum(Mul(y, cot))
				return append([]*Node{y}, Gradient(loss, x, k)...)
			}
			// The bfloat16 computations individually, in float32 on the rounded values.
			ref := func(x, k, cot *Node) []*Node {
				y := conv(x, k)
				return append([]*Node{y}, Gradient(ReduceAllSum(Mul(y, cot)), x, k)...)
			}
			prof := ProfileOf(b)
			prof.Reset()
			got := MustNewExec(b, mixed).MustExec(ToFloat32(x), ToFloat32(k), cot)
			calls := map[string]int{}
			for _, e := range prof.Entries() {
				calls[e.Kind] = e.Calls
			}
			if tc.groups == 1 && calls[kindConv] != 3 {
				t.Errorf("native convolutions: %d, want 3 (forward and both gradients); profile %v", calls[kindConv], prof.Entries())
			}
			// The native steps round x, the kernel and the gradient as they read them; the
			// grouped convolution converts them, runs in float32 and rounds its results.
			if tc.groups == 1 && calls[kindConvert] != 0 || tc.groups > 1 && calls[kindConvert] < 3 {
				t.Errorf("conversion steps: %d; profile %v", calls[kindConvert], prof.Entries())
			}
			want := MustNewExec(b, ref).MustExec(roundedTensor(x), roundedTensor(k), cot)
			for i, name := range []string{"output", "input gradient", "kernel gradient"} {
				assertBF16Exact(t, name, got[i], flat32(want[i]))
			}
			// And within a bfloat16 rounding of a float64 computation (groups of 1).
			if tc.groups == 1 {
				x64, k64 := roundedValues(flat(x)), roundedValues(flat(k))
				y64, _, _ := naiveConv(x64, 2, 9, 8, 4, k64, tc.kh, tc.kh, 6, tc.stride, tc.kh/2, 1)
				assertClose(t, "output vs float64", flat32(got[0]), y64, 1.0/128)
			}
		})
	}
}

// ToFloat32 converts a float64 tensor to float32.
func ToFloat32(t *tensors.Tensor) *tensors.Tensor {
	v := flat(t)
	out := make([]float32, len(v))
	for i, x := range v {
		out[i] = float32(x)
	}
	return tensors.FromFlatDataAndDimensions(out, t.Shape().Dimensions...)
}

// TestBF16DotGeneral checks bfloat16 matrix products (the native one of Linear's size, a
// small one and a batched one, both in float32 on the widened operands) and their
// gradients as TestBF16ConvGeneral does. Autodiff writes the gradients as products of
// broadcast operands and sums (reduceSumBF16), not as DotGeneral: one native product each.
func TestBF16DotGeneral(t *testing.T) {
	b := pureGo(t)
	rng := rand.New(rand.NewPCG(5, 6))
	for _, tc := range []struct {
		name        string
		lhs, rhs    []int
		lc, rc      []int
		lb, rb      []int
		out         []int
		nativeCalls int
	}{
		{"linear", []int{64, 96}, []int{128, 96}, []int{1}, []int{1}, nil, nil, []int{64, 128}, 1},
		{"small", []int{4, 5}, []int{5, 3}, []int{1}, []int{0}, nil, nil, []int{4, 3}, 0},
		{"batched", []int{3, 4, 5}, []int{3, 6, 5}, []int{2}, []int{2}, []int{0}, []int{0}, []int{3, 4, 6}, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l, r := randTensor(rng, tc.lhs...), randTensor(rng, tc.rhs...)
			cot := roundedTensor(randTensor(rng, tc.out...))
			dot := func(l, r *Node) *Node { return DotGeneral(l, tc.lc, tc.lb, r, tc.rc, tc.rb) }
			mixed := func(l, r, cot *Node) []*Node {
				y := ConvertDType(dot(ConvertDType(l, dtypes.BFloat16), ConvertDType(r, dtypes.BFloat16)), dtypes.Float32)
				return append([]*Node{y}, Gradient(ReduceAllSum(Mul(y, cot)), l, r)...)
			}
			ref := func(l, r, cot *Node) []*Node {
				y := dot(l, r)
				return append([]*Node{y}, Gradient(ReduceAllSum(Mul(y, cot)), l, r)...)
			}
			prof := ProfileOf(b)
			prof.Reset()
			got := MustNewExec(b, mixed).MustExec(ToFloat32(l), ToFloat32(r), cot)
			calls := 0
			for _, e := range prof.Entries() {
				if e.Kind == kindMatMul {
					calls = e.Calls
				}
			}
			if calls != tc.nativeCalls {
				t.Errorf("native matrix products: %d, want %d; profile %v", calls, tc.nativeCalls, prof.Entries())
			}
			want := MustNewExec(b, ref).MustExec(roundedTensor(l), roundedTensor(r), cot)
			for i, name := range []string{"output", "lhs gradient", "rhs gradient"} {
				assertBF16Exact(t, name, got[i], flat32(want[i]))
			}
		})
	}
}

// The engine's conversion to bfloat16 rounds to nearest even; reading back is exact.
func TestBF16ConvertDType(t *testing.T) {
	b := pureGo(t)
	rng := rand.New(rand.NewPCG(7, 8))
	x := ToFloat32(randTensor(rng, 1000))
	got := MustNewExec(b, func(x *Node) *Node { return ConvertDType(ConvertDType(x, dtypes.BFloat16), dtypes.Float32) }).MustExec(x)[0]
	assertBF16Exact(t, "round trip", got, flat32(x))
	bf := MustNewExec(b, func(x *Node) *Node { return ConvertDType(x, dtypes.BFloat16) }).MustExec(x)[0]
	v := tensors.MustCopyFlatData[bfloat16.BFloat16](bf)
	for i, f := range tensors.MustCopyFlatData[float32](x) {
		if v[i].Float32() != refRoundBF16(f) {
			t.Fatalf("bfloat16 value %d = %g, want %g", i, v[i].Float32(), refRoundBF16(f))
		}
	}
}

package nn_test

import (
	"math"
	"testing"

	"github.com/gomlx/gomlx/pkg/core/dtypes"
	. "github.com/gomlx/gomlx/pkg/core/graph"
	"github.com/gomlx/gomlx/pkg/core/tensors"
	gctx "github.com/gomlx/gomlx/pkg/ml/context"

	"github.com/goselfsup/goselfsup/engine/backend"
	"github.com/goselfsup/goselfsup/models/nn"
)

// toBF16 rounds to the nearest bfloat16, ties to even, by comparing the distances to the two
// bfloat16 neighbours in float64 (finite values only): independent of the code under test.
func toBF16(v float64) float64 {
	f := float32(v)
	lo := math.Float32frombits(math.Float32bits(f) &^ 0xffff)
	if lo == f {
		return float64(f)
	}
	hi := math.Float32frombits(math.Float32bits(lo) + 0x10000)
	dlo, dhi := math.Abs(float64(f)-float64(lo)), math.Abs(float64(hi)-float64(f))
	if dlo < dhi || dlo == dhi && math.Float32bits(lo)&0x10000 == 0 {
		return float64(lo)
	}
	return float64(hi)
}

func values(t *tensors.Tensor) []float64 {
	v := tensors.MustCopyFlatData[float32](t)
	out := make([]float64, len(v))
	for i, x := range v {
		out[i] = float64(x)
	}
	return out
}

func mapped(v []float64, f func(float64) float64) []float64 {
	out := make([]float64, len(v))
	for i, x := range v {
		out[i] = f(x)
	}
	return out
}

func testInput(n int) []float32 {
	out := make([]float32, n)
	for i := range out {
		out[i] = float32(math.Sin(float64(i)*0.7311)*1.7 + math.Cos(float64(i*i)*0.013))
	}
	return out
}

// conv computes a float64 convolution of NHWC x with an HWIO kernel, square, stride s,
// padding p.
func conv(x []float64, n, h, w, c int, k []float64, kk, o, s, p int) []float64 {
	ho, wo := (h+2*p-kk)/s+1, (w+2*p-kk)/s+1
	y := make([]float64, n*ho*wo*o)
	for b := range n {
		for i := range ho {
			for j := range wo {
				for oc := range o {
					var sum float64
					for a := range kk {
						for bb := range kk {
							yi, xj := i*s+a-p, j*s+bb-p
							if yi < 0 || yi >= h || xj < 0 || xj >= w {
								continue
							}
							for ic := range c {
								sum += x[((b*h+yi)*w+xj)*c+ic] * k[((a*kk+bb)*c+ic)*o+oc]
							}
						}
					}
					y[((b*ho+i)*wo+j)*o+oc] = sum
				}
			}
		}
	}
	return y
}

// linear computes x Wᵀ in float64, x [m, in], W [out, in].
func linear(x []float64, m, in int, w []float64, out int) []float64 {
	y := make([]float64, m*out)
	for i := range m {
		for o := range out {
			var sum float64
			for k := range in {
				sum += x[i*in+k] * w[o*in+k]
			}
			y[i*out+o] = sum
		}
	}
	return y
}

// checkAutocast compares a layer's output under autocast with want: the float64
// computation on the bfloat16-rounded input and weight, rounded to bfloat16, plus the bias
// (float32). The layer computes in float32 on the same values, so the two may differ by the
// rounding of float32 sums only, and then by one bfloat16 step at most.
func checkAutocast(t *testing.T, what string, got, prod, bias []float64, channels int) {
	t.Helper()
	rounded := 0
	for i := range got {
		want := toBF16(prod[i]) + bias[i%channels]
		if tol := math.Abs(prod[i]) / 256; math.Abs(got[i]-want) > tol+1e-6 {
			t.Fatalf("%s[%d] = %.8g, want %.8g (bfloat16 of %.8g plus bias %.8g)", what, i, got[i], want, prod[i], bias[i%channels])
		}
		if float32(want) == float32(got[i]) {
			rounded++
		}
	}
	// Nearly all agree bit for bit: a float32 sum crossing a rounding boundary is rare.
	if rounded < len(got)*99/100 {
		t.Errorf("%s: %d of %d values equal the rounded float64 computation exactly", what, rounded, len(got))
	}
}

// TestAutocastConvLinear checks Conv2d and Linear inside and outside an autocast region:
// inside, the product in bfloat16 (on bfloat16 inputs and weights, rounded to bfloat16) plus
// the float32 bias; outside, float32; the weights stay float32 either way.
func TestAutocastConvLinear(t *testing.T) {
	b, err := backend.New("go")
	if err != nil {
		t.Fatal(err)
	}
	ctx := gctx.New()
	s := nn.NewScope(ctx, 7)
	const n, h, w, c, o = 2, 9, 9, 5, 6
	cv := nn.NewConv2d(s.In("conv"), c, o, 3, 2, 1, true)
	small := nn.NewLinear(s.In("small"), 20, 7, true)   // a product below the native kernel's size
	large := nn.NewLinear(s.In("large"), 64, 128, true) // Linear's native matrix product
	for _, l := range []*nn.Linear{small, large} {
		l.Bias.MustSetValue(tensors.FromFlatDataAndDimensions(testInput(l.OutFeatures), l.OutFeatures))
	}
	cv.Bias.MustSetValue(tensors.FromFlatDataAndDimensions(testInput(o), o))

	run := func(autocast bool) [3][]float64 {
		exec := gctx.MustNewExec(b, ctx, func(ctx *gctx.Context, x, v, u *Node) []*Node {
			if autocast {
				nn.SetAutocast(ctx, x.Graph(), dtypes.BFloat16)
			}
			return []*Node{cv.Forward(x), small.Forward(v), large.Forward(u)}
		})
		defer exec.Finalize()
		out := exec.MustExec(
			tensors.FromFlatDataAndDimensions(testInput(n*h*w*c), n, h, w, c),
			tensors.FromFlatDataAndDimensions(testInput(3*20), 3, 20),
			tensors.FromFlatDataAndDimensions(testInput(32*64), 32, 64))
		var r [3][]float64
		for i := range r {
			if out[i].DType() != dtypes.Float32 {
				t.Fatalf("output %d: dtype %s, want float32", i, out[i].DType())
			}
			r[i] = values(out[i])
		}
		return r
	}
	mixed, full := run(true), run(false)

	for _, v := range []*gctx.Variable{cv.Weight, cv.Bias, small.Weight, large.Weight} {
		if d := v.MustValue().DType(); d != dtypes.Float32 {
			t.Errorf("%s: dtype %s, want float32", nn.TorchName(v), d)
		}
	}
	x := values(tensors.FromFlatDataAndDimensions(testInput(n*h*w*c), n*h*w*c))
	k := values(cv.Weight.MustValue())
	cb := values(cv.Bias.MustValue())

	prod := conv(mapped(x, toBF16), n, h, w, c, mapped(k, toBF16), 3, o, 2, 1)
	checkAutocast(t, "conv", mixed[0], prod, cb, o)
	f32 := conv(x, n, h, w, c, k, 3, o, 2, 1)
	differ := 0
	for i := range f32 {
		want := f32[i] + cb[i%o]
		if math.Abs(full[0][i]-want) > 1e-5*(1+math.Abs(want)) {
			t.Fatalf("conv outside autocast [%d] = %g, want %g", i, full[0][i], want)
		}
		if full[0][i] != mixed[0][i] {
			differ++
		}
	}
	if differ == 0 {
		t.Error("conv: autocast changed nothing")
	}

	for i, l := range []*nn.Linear{small, large} {
		m := []int{3, 32}[i]
		in := make([]float64, m*l.InFeatures)
		for j, v := range testInput(m * l.InFeatures) {
			in[j] = float64(v)
		}
		wt := values(l.Weight.MustValue())
		bias := values(l.Bias.MustValue())
		checkAutocast(t, []string{"small linear", "large linear"}[i], mixed[1+i],
			linear(mapped(in, toBF16), m, l.InFeatures, mapped(wt, toBF16), l.OutFeatures), bias, l.OutFeatures)
		f32 := linear(in, m, l.InFeatures, wt, l.OutFeatures)
		for j := range f32 {
			want := f32[j] + bias[j%l.OutFeatures]
			if math.Abs(full[1+i][j]-want) > 1e-5*(1+math.Abs(want)) {
				t.Fatalf("linear %d outside autocast [%d] = %g, want %g", i, j, full[1+i][j], want)
			}
		}
	}
}

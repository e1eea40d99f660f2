package backend

import (
	"math"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/gomlx/gomlx/backends"
	. "github.com/gomlx/gomlx/pkg/core/graph"
	"github.com/gomlx/gomlx/pkg/core/tensors"
)

func pureGo(t testing.TB) backends.Backend {
	t.Helper()
	b, err := New("go")
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func randTensor(rng *rand.Rand, dims ...int) *tensors.Tensor {
	n := 1
	for _, d := range dims {
		n *= d
	}
	data := make([]float64, n)
	for i := range data {
		data[i] = rng.NormFloat64()
	}
	return tensors.FromFlatDataAndDimensions(data, dims...)
}

func flat(t *tensors.Tensor) []float64 { return tensors.MustCopyFlatData[float64](t) }

func assertClose(t *testing.T, what string, got, want []float64, tol float64) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: %d values, want %d", what, len(got), len(want))
	}
	for i := range got {
		if math.Abs(got[i]-want[i]) > tol*(1+math.Abs(want[i])) {
			t.Fatalf("%s[%d] = %.10g, want %.10g", what, i, got[i], want[i])
		}
	}
}

func TestPadAndReverse(t *testing.T) {
	b := pureGo(t)
	x := tensors.FromValue([][]float64{{1, 2, 3}, {4, 5, 6}})
	e := MustNewExec(b, func(x *Node) (*Node, *Node, *Node) {
		fill := Scalar(x.Graph(), x.DType(), -1)
		pad := Pad(x, fill, backends.PadAxis{Start: 1, End: 0}, backends.PadAxis{Start: -1, End: 2, Interior: 1})
		return pad, Reverse(x, 1), Reverse(x, 0, 1)
	})
	out := e.MustExec(x)
	// Axis 0: one row of fill before. Axis 1: [1 -1 2 -1 3] minus the first, plus two fills.
	wantPad := []float64{
		-1, -1, -1, -1, -1, -1,
		-1, 2, -1, 3, -1, -1,
		-1, 5, -1, 6, -1, -1,
	}
	assertClose(t, "Pad", flat(out[0]), wantPad, 0)
	assertClose(t, "Reverse(1)", flat(out[1]), []float64{3, 2, 1, 6, 5, 4}, 0)
	assertClose(t, "Reverse(0,1)", flat(out[2]), []float64{6, 5, 4, 3, 2, 1}, 0)
}

// naiveConv is a direct NHWC cross-correlation, the definition written as loops.
func naiveConv(x []float64, n, h, w, c int, k []float64, kh, kw, co int, stride, pad, dil int) ([]float64, int, int) {
	oh := (h+2*pad-dil*(kh-1)-1)/stride + 1
	ow := (w+2*pad-dil*(kw-1)-1)/stride + 1
	out := make([]float64, n*oh*ow*co)
	for b := 0; b < n; b++ {
		for i := 0; i < oh; i++ {
			for j := 0; j < ow; j++ {
				for o := 0; o < co; o++ {
					var s float64
					for p := 0; p < kh; p++ {
						for q := 0; q < kw; q++ {
							y, xx := i*stride-pad+p*dil, j*stride-pad+q*dil
							if y < 0 || y >= h || xx < 0 || xx >= w {
								continue
							}
							for ci := 0; ci < c; ci++ {
								s += x[((b*h+y)*w+xx)*c+ci] * k[((p*kw+q)*c+ci)*co+o]
							}
						}
					}
					out[((b*oh+i)*ow+j)*co+o] = s
				}
			}
		}
	}
	return out, oh, ow
}

func TestConvMatchesDefinition(t *testing.T) {
	b := pureGo(t)
	rng := rand.New(rand.NewPCG(1, 2))
	for _, tc := range []struct{ n, h, w, c, kh, kw, co, stride, pad, dil int }{
		{2, 5, 5, 3, 3, 3, 4, 1, 1, 1},
		{2, 6, 7, 2, 3, 3, 3, 2, 1, 1},
		{1, 7, 7, 3, 7, 7, 2, 2, 3, 1}, // a ResNet stem, small
		{2, 4, 4, 3, 1, 1, 5, 2, 0, 1}, // a downsampling shortcut
		{1, 7, 6, 2, 3, 2, 2, 1, 2, 2}, // dilated
	} {
		x := randTensor(rng, tc.n, tc.h, tc.w, tc.c)
		k := randTensor(rng, tc.kh, tc.kw, tc.c, tc.co)
		e := MustNewExec(b, func(x, k *Node) *Node {
			return Convolve(x, k).StridePerAxis(tc.stride, tc.stride).
				PaddingPerDim([][2]int{{tc.pad, tc.pad}, {tc.pad, tc.pad}}).DilationPerAxis(tc.dil, tc.dil).Done()
		})
		got := e.MustExec(x, k)[0]
		want, oh, ow := naiveConv(flat(x), tc.n, tc.h, tc.w, tc.c, flat(k), tc.kh, tc.kw, tc.co, tc.stride, tc.pad, tc.dil)
		if d := got.Shape().Dimensions; d[1] != oh || d[2] != ow {
			t.Fatalf("%+v: output %v, want %dx%d", tc, d, oh, ow)
		}
		assertClose(t, "conv", flat(got), want, 1e-12)
	}
}

// checkGradient compares the gradient of a scalar function with central finite differences,
// in float64, on every input element.
func checkGradient(t *testing.T, b backends.Backend, name string, fn func(inputs []*Node) *Node, inputs ...*tensors.Tensor) {
	t.Helper()
	args := make([]any, len(inputs))
	for i, in := range inputs {
		args[i] = in
	}
	grads := MustNewExec(b, func(in []*Node) []*Node {
		return Gradient(fn(in), in...)
	}).MustExec(args...)
	value := MustNewExec(b, func(in []*Node) *Node { return fn(in) })
	const h = 1e-6
	for i, in := range inputs {
		data := flat(in)
		got := flat(grads[i])
		for j := range data {
			perturbed := func(delta float64) float64 {
				d := append([]float64(nil), data...)
				d[j] += delta
				a := append([]any(nil), args...)
				a[i] = tensors.FromFlatDataAndDimensions(d, in.Shape().Dimensions...)
				return flat(value.MustExec(a...)[0])[0]
			}
			fd := (perturbed(h) - perturbed(-h)) / (2 * h)
			if math.Abs(got[j]-fd) > 1e-5*(1+math.Abs(fd)) {
				t.Fatalf("%s: d/d input%d[%d] = %.9g, finite differences %.9g", name, i, j, got[j], fd)
			}
		}
	}
}

// weighted turns an output into a scalar with fixed random weights, so that every output
// element's gradient matters.
func weighted(y *Node, seed uint64) *Node {
	rng := rand.New(rand.NewPCG(seed, 7))
	w := randTensor(rng, y.Shape().Dimensions...)
	return ReduceAllSum(Mul(y, Const(y.Graph(), w)))
}

func TestConvGradients(t *testing.T) {
	b := pureGo(t)
	rng := rand.New(rand.NewPCG(3, 4))
	for _, tc := range []struct{ stride, pad, kernel int }{{1, 1, 3}, {2, 1, 3}, {2, 0, 1}, {2, 3, 7}} {
		x := randTensor(rng, 2, 7, 7, 2)
		k := randTensor(rng, tc.kernel, tc.kernel, 2, 3)
		checkGradient(t, b, "conv", func(in []*Node) *Node {
			y := Convolve(in[0], in[1]).StridePerAxis(tc.stride, tc.stride).
				PaddingPerDim([][2]int{{tc.pad, tc.pad}, {tc.pad, tc.pad}}).Done()
			return weighted(y, 11)
		}, x, k)
	}
}

func TestMaxPoolGradient(t *testing.T) {
	b := pureGo(t)
	rng := rand.New(rand.NewPCG(5, 6))
	x := randTensor(rng, 2, 7, 7, 3)
	checkGradient(t, b, "max-pool 3x3/2 pad 1", func(in []*Node) *Node {
		y := MaxPool(in[0]).Window(3).Strides(2).PadSame().Done()
		return weighted(y, 12)
	}, x)
	checkGradient(t, b, "max-pool 2x2/2", func(in []*Node) *Node {
		return weighted(MaxPool(in[0]).Window(2).Done(), 13)
	}, x)
}

func TestMaxPoolGradientTies(t *testing.T) {
	// With ties, the whole gradient goes to the first maximum of the window, as in PyTorch
	// and XLA.
	b := pureGo(t)
	x := tensors.FromFlatDataAndDimensions([]float64{1, 1, 1, 1}, 1, 2, 2, 1)
	g := MustNewExec(b, func(x *Node) *Node {
		return Gradient(ReduceAllSum(MaxPool(x).Window(2).Done()), x)[0]
	}).MustExec(x)[0]
	assertClose(t, "tied max-pool gradient", flat(g), []float64{1, 0, 0, 0}, 0)
}

func TestBatchNormOps(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 8))
	x := randTensor(rng, 3, 2, 2, 4)
	scale := randTensor(rng, 4)
	offset := randTensor(rng, 4)
	// Forward: the definition, per channel.
	b := pureGo(t)
	out := MustNewExec(b, func(x, s, o *Node) []*Node {
		y, mean, variance := InternalBatchNormForTraining(x, s, o, 1e-3, -1)
		return []*Node{y, mean, variance}
	}).MustExec(x, scale, offset)
	xs, ss, os := flat(x), flat(scale), flat(offset)
	for c := 0; c < 4; c++ {
		var m, v float64
		for i := c; i < len(xs); i += 4 {
			m += xs[i]
		}
		m /= 12
		for i := c; i < len(xs); i += 4 {
			v += (xs[i] - m) * (xs[i] - m)
		}
		v /= 12
		assertClose(t, "mean", flat(out[1])[c:c+1], []float64{m}, 1e-12)
		assertClose(t, "variance", flat(out[2])[c:c+1], []float64{v}, 1e-12)
		for i := c; i < len(xs); i += 4 {
			want := (xs[i]-m)/math.Sqrt(v+1e-3)*ss[c] + os[c]
			assertClose(t, "normalized", flat(out[0])[i:i+1], []float64{want}, 1e-6)
		}
	}
	checkGradient(t, b, "batch norm", func(in []*Node) *Node {
		y, _, _ := InternalBatchNormForTraining(in[0], in[1], in[2], 1e-3, -1)
		return weighted(y, 14)
	}, x, scale, offset)
	inf := MustNewExec(b, func(x, s, o *Node) *Node {
		return InternalBatchNormForInference(x, s, o, Const(x.Graph(), []float64{1, 2, 3, 4}), Const(x.Graph(), []float64{4, 1, 1, 9}), 0, -1)
	}).MustExec(x, scale, offset)[0]
	for i, v := range xs {
		c := i % 4
		want := (v-float64(c+1))/math.Sqrt([]float64{4, 1, 1, 9}[c])*ss[c] + os[c]
		assertClose(t, "inference", flat(inf)[i:i+1], []float64{want}, 1e-12)
	}
}

func TestSliceGradient(t *testing.T) {
	b := pureGo(t)
	rng := rand.New(rand.NewPCG(9, 10))
	x := randTensor(rng, 4, 6)
	checkGradient(t, b, "strided slice", func(in []*Node) *Node {
		return weighted(Slice(in[0], AxisRange(1, 4), AxisRange(0, 6).Stride(2)), 15)
	}, x)
}

func TestNewErrors(t *testing.T) {
	t.Setenv("GOMLX_NO_AUTO_INSTALL", "1")
	t.Setenv("PJRT_PLUGIN_LIBRARY_PATH", t.TempDir())
	if _, err := New("nosuch"); err == nil {
		t.Error("an unknown backend was accepted")
	}
	b, err := New("go")
	if err != nil || !IsPureGo(b) {
		t.Fatalf("New(go) = %v, %v", b, err)
	}
	t.Setenv("GOMLX_BACKEND", "go")
	if b, err := New(""); err != nil || !IsPureGo(b) {
		t.Fatalf("New(\"\") with GOMLX_BACKEND=go = %v, %v", b, err)
	}
}

// Reverse and Pad have no gradients of their own in GoMLX: training uses them inside the
// gradients of convolutions (Reverse) and slices (Pad), which are not differentiated again;
// TestConvGradients and TestSliceGradient check them there, and TestPadAndReverse their values.

func TestXLAWithoutPlugin(t *testing.T) {
	if !xlaCompiledIn {
		t.Skip("built without XLA")
	}
	t.Setenv("GOMLX_NO_AUTO_INSTALL", "1")
	t.Setenv("PJRT_PLUGIN_LIBRARY_PATH", t.TempDir())
	t.Setenv("LD_LIBRARY_PATH", "")
	_, err := New("xla:cuda")
	if err == nil {
		t.Skip("this machine has a CUDA PJRT plugin")
	}
	for _, want := range []string{`backend "xla:cuda"`, "PJRT plugin", "GOMLX_NO_AUTO_INSTALL", `backend = "go"`} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("the error %q does not mention %q", err, want)
		}
	}
}

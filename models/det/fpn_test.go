package det_test

import (
	"bytes"
	"encoding/json"
	"math"
	"math/rand/v2"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gomlx/gomlx/pkg/core/dtypes"
	. "github.com/gomlx/gomlx/pkg/core/graph"
	"github.com/gomlx/gomlx/pkg/core/tensors"
	"github.com/gomlx/gomlx/pkg/ml/context"

	"github.com/goselfsup/goselfsup/internal/pyref"
	"github.com/goselfsup/goselfsup/models/det"
	"github.com/goselfsup/goselfsup/models/nn"
	"github.com/goselfsup/goselfsup/registry"
)

// torchPython returns a Python with PyTorch and torchvision, or skips the test.
func torchPython(t *testing.T) string {
	t.Helper()
	python, err := pyref.Python("torch", "torchvision")
	if err != nil {
		t.Skip(err)
	}
	return python
}

// runFPNReference runs benchmarks/fpn_reference.py in mode with req as JSON on stdin and
// decodes its JSON answer into resp.
func runFPNReference(t *testing.T, python, mode string, req, resp any) {
	t.Helper()
	in, err := json.Marshal(req)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(python, filepath.Join("..", "..", "benchmarks", "fpn_reference.py"), mode)
	cmd.Stdin = bytes.NewReader(in)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("fpn_reference.py %s: %v\n%s", mode, err, stderr.String())
	}
	if err := json.Unmarshal(out, resp); err != nil {
		t.Fatalf("fpn_reference.py %s: %v", mode, err)
	}
}

// jsonParam is a parameter as fpn_reference.py takes it: goselfsup's layout, flat.
type jsonParam struct {
	Shape []int     `json:"shape"`
	Data  []float64 `json:"data"`
}

// trainableParams are ctx's trainable float variables by their PyTorch names, and the
// variables in a fixed order.
func trainableParams(t *testing.T, ctx *context.Context) (map[string]jsonParam, []*context.Variable) {
	t.Helper()
	params := map[string]jsonParam{}
	var vars []*context.Variable
	for v := range ctx.IterVariables() {
		if !v.Trainable || !v.Shape().DType.IsFloat() {
			continue
		}
		params[nn.TorchName(v)] = jsonParam{Shape: v.Shape().Dimensions, Data: flat64(t, v.MustValue())}
		vars = append(vars, v)
	}
	return params, vars
}

// randomFlat is n values drawn from N(0, std), rounded to dt.
func randomFlat(rng *rand.Rand, n int, std float64, dt dtypes.DType) []float64 {
	v := make([]float64, n)
	for i := range v {
		v[i] = std * rng.NormFloat64()
		if dt == dtypes.Float32 {
			v[i] = float64(float32(v[i]))
		}
	}
	return v
}

// tensorFlat is values as a tensor of dt.
func tensorFlat(dt dtypes.DType, v []float64, dims ...int) *tensors.Tensor {
	if dt == dtypes.Float64 {
		return tensors.FromFlatDataAndDimensions(append([]float64(nil), v...), dims...)
	}
	f := make([]float32, len(v))
	for i, x := range v {
		f[i] = float32(x)
	}
	return tensors.FromFlatDataAndDimensions(f, dims...)
}

// TestFPNMatchesTorch compares the FPN's outputs and the gradients of sum_l <out_l, cot_l>
// w.r.t. its inputs and every parameter with a PyTorch transcription of mmdet's FPN (the
// same weights; BN in train mode), with and without norm_cfg, in float32 (1e-5) and float64
// (1e-9). The input sizes are odd, so the top-down upsampling takes the non-integer path
// (3 -> 5 columns, floor(d * 3 / 5)) besides the 2x one, and P6 is max_pool2d(1, 2) of an odd
// map. The parameters' gradients are compared relative to each tensor's largest value
// (compareScaled); outputs and input gradients value by value.
func TestFPNMatchesTorch(t *testing.T) {
	python := torchPython(t)
	inCh := []int{4, 6, 8, 10}
	sizes := [][2]int{{16, 20}, {8, 10}, {4, 5}, {2, 3}}
	const b, out, numOuts = 2, 8, 5
	for _, dt := range []dtypes.DType{dtypes.Float32, dtypes.Float64} {
		for _, norm := range []bool{true, false} {
			t.Run(dt.String()+map[bool]string{true: "-BN", false: "-bias"}[norm], func(t *testing.T) {
				ctx := context.New()
				scope := nn.NewScope(ctx, 3).WithDType(dt)
				cfg := map[string]any{"in_channels": inCh, "out_channels": out, "num_outs": numOuts}
				if norm {
					cfg["norm_cfg"] = map[string]any{"type": "BN", "requires_grad": true}
				}
				fpn, err := registry.Build[det.MultiLevelNeck](registry.With(nil, scope), registry.NewSpec(registry.Necks, "FPN", cfg))
				if err != nil {
					t.Fatal(err)
				}
				params, vars := trainableParams(t, ctx)
				rng := rand.New(rand.NewPCG(5, 6))
				var inputs [][]float64
				var shapes [][]int
				var args []any
				for i, s := range sizes {
					v := randomFlat(rng, b*s[0]*s[1]*inCh[i], 1, dt)
					inputs = append(inputs, v)
					shapes = append(shapes, []int{b, s[0], s[1], inCh[i]})
					args = append(args, tensorFlat(dt, v, b, s[0], s[1], inCh[i]))
				}
				outSizes := [][2]int{{16, 20}, {8, 10}, {4, 5}, {2, 3}, {1, 2}}
				var cots [][]float64
				for _, s := range outSizes {
					v := randomFlat(rng, b*s[0]*s[1]*out, 1, dt)
					cots = append(cots, v)
					args = append(args, tensorFlat(dt, v, b, s[0], s[1], out))
				}
				res := context.MustExecOnceN(pureGo(t), ctx, func(ctx *context.Context, in []*Node) []*Node {
					outs := fpn.Forward(in[:4], true)
					var loss *Node
					for i, o := range outs {
						l := ReduceAllSum(Mul(o, in[4+i]))
						if loss == nil {
							loss = l
						} else {
							loss = Add(loss, l)
						}
					}
					wrt := append([]*Node{}, in[:4]...)
					for _, v := range vars {
						wrt = append(wrt, v.ValueGraph(loss.Graph()))
					}
					return append(outs, Gradient(loss, wrt...)...)
				}, args...)
				var want struct {
					Outs       [][]float64          `json:"outs"`
					OutShapes  [][]int              `json:"out_shapes"`
					InputGrads [][]float64          `json:"input_grads"`
					ParamGrads map[string][]float64 `json:"param_grads"`
				}
				runFPNReference(t, python, "fpn", map[string]any{"dtype": strings.ToLower(dt.String()), "norm": norm, "num_outs": numOuts,
					"inputs": inputs, "shapes": shapes, "cots": cots, "params": params}, &want)
				tol := tolerance(dt)
				for i := range numOuts {
					if got := res[i].Shape().Dimensions; len(got) != 4 || got[1] != want.OutShapes[i][1] || got[2] != want.OutShapes[i][2] {
						t.Fatalf("output %d: shape %v, want %v", i, got, want.OutShapes[i])
					}
					compareFlat(t, "out", flat64(t, res[i]), want.Outs[i], tol)
				}
				for i := range 4 {
					compareFlat(t, "input grad", flat64(t, res[numOuts+i]), want.InputGrads[i], tol)
				}
				for j, v := range vars {
					compareScaled(t, "grad "+nn.TorchName(v), flat64(t, res[numOuts+4+j]), want.ParamGrads[nn.TorchName(v)], tol)
				}
				if len(want.ParamGrads) != len(vars) {
					t.Errorf("%d parameters, the reference has %d", len(vars), len(want.ParamGrads))
				}
			})
		}
	}
}

// compareScaled is compareFlat with the tolerance relative to the largest |want| of the
// tensor (at least 1) instead of each value's: for gradients of weights, each a sum over
// every pixel of the batch (640 products here), whose float32 rounding grows with the
// terms, not with the (possibly cancelling) result.
func compareScaled(t *testing.T, what string, got, want []float64, tol float64) {
	t.Helper()
	scale := 1.0
	for _, w := range want {
		scale = math.Max(scale, math.Abs(w))
	}
	compareFlat(t, what, got, want, tol*scale)
}

// TestFPNInit checks mmdet's FPN init: conv weights within the xavier-uniform bound
// sqrt(6 / (fan_in + fan_out)) and spread over it, biases zero, BN weight 1 and bias 0; and
// the variable names of mmdet's state_dict.
func TestFPNInit(t *testing.T) {
	ctx := context.New()
	scope := nn.NewScope(ctx, 1)
	_, err := registry.Build[det.MultiLevelNeck](registry.With(nil, scope), registry.NewSpec(registry.Necks, "FPN",
		map[string]any{"in_channels": []int{16, 32}, "out_channels": 24, "num_outs": 3}))
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for v := range ctx.IterVariables() {
		name := nn.TorchName(v)
		seen[name] = true
		vals := flat64(t, v.MustValue())
		switch v.Name() {
		case "weight":
			dims := v.Shape().Dimensions // [k, k, in, out]
			k := dims[0] * dims[1]
			bound := math.Sqrt(6 / float64(k*(dims[2]+dims[3])))
			lo, hi := 0.0, 0.0
			for _, x := range vals {
				if x < -bound || x > bound {
					t.Fatalf("%s: %v outside ±%v", name, x, bound)
				}
				lo, hi = min(lo, x), max(hi, x)
			}
			if lo > -0.8*bound || hi < 0.8*bound {
				t.Errorf("%s: values in [%v, %v], want spread over ±%v", name, lo, hi, bound)
			}
		case "bias":
			for _, x := range vals {
				if x != 0 {
					t.Fatalf("%s: %v, want 0", name, x)
				}
			}
		}
	}
	for _, n := range []string{"lateral_convs.0.conv.weight", "lateral_convs.1.conv.bias", "fpn_convs.0.conv.weight", "fpn_convs.1.conv.bias"} {
		if !seen[n] {
			t.Errorf("no variable %s (have %v)", n, seen)
		}
	}
}

package det_test

import (
	"fmt"
	"math"
	"math/rand/v2"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/gomlx/gomlx/pkg/core/dtypes"
	. "github.com/gomlx/gomlx/pkg/core/graph"
	"github.com/gomlx/gomlx/pkg/core/tensors"
	"github.com/gomlx/gomlx/pkg/ml/context"

	"github.com/goselfsup/goselfsup/engine"
	"github.com/goselfsup/goselfsup/internal/pyref"
	"github.com/goselfsup/goselfsup/models/det"
	"github.com/goselfsup/goselfsup/models/nn"
	"github.com/goselfsup/goselfsup/registry"
)

// maskRef runs benchmarks/mask_head_reference.py in mode on dir.
func maskRef(t *testing.T, python, mode, dir string) {
	t.Helper()
	if out, err := exec.Command(python, filepath.Join("..", "..", "benchmarks", "mask_head_reference.py"), mode, dir).CombinedOutput(); err != nil {
		t.Fatalf("mask_head_reference.py %s: %v\n%s", mode, err, out)
	}
}

func saveNPY(t *testing.T, path string, tt *tensors.Tensor) {
	t.Helper()
	if err := engine.SaveNPY(path, tt); err != nil {
		t.Fatal(err)
	}
}

// maxRelDiff is max |a - b| / max(max |b|, tiny) of two tensors of the same size (any float
// dtypes).
func maxRelDiff(t *testing.T, a, b *tensors.Tensor) float64 {
	t.Helper()
	av, bv := asFloat64(t, a), asFloat64(t, b)
	if len(av) != len(bv) {
		t.Fatalf("sizes differ: %s vs %s", a.Shape(), b.Shape())
	}
	var d, n float64
	for i := range av {
		d = math.Max(d, math.Abs(av[i]-bv[i]))
		n = math.Max(n, math.Abs(bv[i]))
	}
	return d / math.Max(n, 1e-300)
}

func asFloat64(t *testing.T, tt *tensors.Tensor) []float64 {
	t.Helper()
	switch tt.DType() {
	case dtypes.Float64:
		return tensors.MustCopyFlatData[float64](tt)
	case dtypes.Float32:
		v := tensors.MustCopyFlatData[float32](tt)
		out := make([]float64, len(v))
		for i, x := range v {
			out[i] = float64(x)
		}
		return out
	}
	t.Fatalf("unexpected dtype %s", tt.DType())
	return nil
}

// The mask head's forward (batch norms in training mode), loss and gradients (inputs,
// parameters) and running statistics against PyTorch modules of mmdet's FCNMaskHead with the
// same weights (benchmarks/mask_head_reference.py), in float64 to 1e-9 and float32 to 1e-5;
// with and without a norm, and with no positive RoI.
func TestFCNMaskHeadMatchesTorch(t *testing.T) {
	python, err := pyref.Python("torch", "numpy")
	if err != nil {
		t.Skip(err)
	}
	cases := []struct {
		name     string
		dt       dtypes.DType
		norm     bool
		convs    int
		npos     int
		tol      float64
		lossTol  float64
		channels int
	}{
		{"f64-bn", dtypes.Float64, true, 4, 4, 1e-9, 1e-12, 8},
		{"f32-bn", dtypes.Float32, true, 4, 4, 1e-5, 1e-5, 8},
		{"f64-bias", dtypes.Float64, false, 2, 3, 1e-9, 1e-12, 6},
		{"f64-nopos", dtypes.Float64, true, 1, 0, 1e-9, 0, 6},
	}
	for ci, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			const n, s, nc = 6, 14, 5
			ctx := context.New()
			scope := nn.NewScope(ctx, uint64(ci+1)).WithDType(c.dt)
			cfg := map[string]any{"num_convs": c.convs, "in_channels": c.channels, "conv_out_channels": 12, "num_classes": nc}
			if c.norm {
				cfg["norm_cfg"] = map[string]any{"type": "BN"}
			}
			head, err := registry.Build[*det.FCNMaskHead](registry.With(nil, scope), registry.NewSpec(registry.Heads, "FCNMaskHead", cfg))
			if err != nil {
				t.Fatal(err)
			}
			if head.MaskSize() != 2*s {
				t.Fatalf("MaskSize %d", head.MaskSize())
			}
			rng := rand.New(rand.NewPCG(uint64(ci), 3))
			xv := make([]float64, n*s*s*c.channels)
			for i := range xv {
				xv[i] = rng.NormFloat64()
			}
			tv := make([]float64, n*4*s*s)
			for i := range tv {
				tv[i] = float64(rng.IntN(2))
			}
			labels := make([]int32, n)
			weight := make([]float64, n)
			for i := range n {
				labels[i] = int32(rng.IntN(nc))
				if i < c.npos {
					weight[i] = 1
				}
			}
			x, targets, wt := scope.Tensor(xv, n, s, s, c.channels), scope.Tensor(tv, n, 2*s, 2*s), scope.Tensor(weight, n)
			labelsT := tensors.FromFlatDataAndDimensions(labels, n)

			dir := t.TempDir()
			var params, buffers []*context.Variable
			for v := range ctx.IterVariables() {
				tt := v.MustValue()
				if tt.Rank() == 4 {
					if tt, err = engine.ToTorch(tt, "HWIO"); err != nil {
						t.Fatal(err)
					}
				}
				saveNPY(t, filepath.Join(dir, nn.TorchName(v)+".npy"), tt)
				if v.Trainable {
					params = append(params, v)
				} else if v.DType() != dtypes.Int64 {
					buffers = append(buffers, v)
				}
			}
			norm := 0
			if c.norm {
				norm = 1
			}
			saveNPY(t, filepath.Join(dir, "meta.npy"), tensors.FromFlatDataAndDimensions([]int64{int64(c.convs), int64(c.channels), 12, nc, int64(norm)}, 5))
			for name, tt := range map[string]*tensors.Tensor{"x": x, "targets": targets, "labels": labelsT, "weight": wt} {
				saveNPY(t, filepath.Join(dir, name+".npy"), tt)
			}
			maskRef(t, python, "head", dir)

			outs := context.MustExecOnceN(pureGo(t), ctx, func(ctx *context.Context, x, targets, labels, weight *Node) []*Node {
				logits := head.Forward(x, true)
				loss := head.Loss(logits, targets, labels, weight)
				nodes := []*Node{x}
				for _, p := range params {
					nodes = append(nodes, p.ValueGraph(x.Graph()))
				}
				return append([]*Node{logits, loss, head.Probs(logits, labels)}, Gradient(loss, nodes...)...)
			}, x, targets, labelsT, wt)

			if d := maxRelDiff(t, outs[0], mustLoad(t, filepath.Join(dir, "logits.npy"))); d > c.tol {
				t.Errorf("logits differ by %.2g", d)
			}
			want := tensors.MustCopyFlatData[float64](mustLoad(t, filepath.Join(dir, "loss.npy")))[0]
			got := asFloat64(t, outs[1])[0]
			if math.Abs(got-want) > c.lossTol*math.Abs(want) || (c.npos == 0 && got != 0) {
				t.Errorf("loss %.15g, want %.15g", got, want)
			}
			// Probs: the sigmoid of each RoI's label channel of the reference's logits.
			refLogits := asFloat64(t, mustLoad(t, filepath.Join(dir, "logits.npy")))
			probs := asFloat64(t, outs[2])
			var worstP float64
			for i := range n {
				for p := range 4 * s * s {
					z := refLogits[(i*4*s*s+p)*nc+int(labels[i])]
					worstP = math.Max(worstP, math.Abs(probs[i*4*s*s+p]-1/(1+math.Exp(-z))))
				}
			}
			if worstP > c.tol {
				t.Errorf("probabilities differ by %.2g", worstP)
			}
			worst := 0.0
			grads := outs[3:]
			check := func(name string, g, ref *tensors.Tensor) {
				if c.npos == 0 {
					for _, v := range asFloat64(t, g) {
						if v != 0 {
							t.Errorf("gradient of %s: %g, want exactly 0 without positives", name, v)
							return
						}
					}
				}
				d := maxRelDiff(t, g, ref)
				if c.npos == 0 {
					d = 0 // both all zero (checked above for ours)
				}
				worst = math.Max(worst, d)
				if d > c.tol {
					t.Errorf("gradient of %s differs by %.2g", name, d)
				}
			}
			check("x", grads[0], mustLoad(t, filepath.Join(dir, "gx.npy")))
			for i, p := range params {
				g := grads[1+i]
				if g.Rank() == 4 {
					if g, err = engine.ToTorch(g, "HWIO"); err != nil {
						t.Fatal(err)
					}
				}
				check(nn.TorchName(p), g, mustLoad(t, filepath.Join(dir, "grads", nn.TorchName(p)+".npy")))
			}
			for _, b := range buffers {
				d := maxRelDiff(t, b.MustValue(), mustLoad(t, filepath.Join(dir, "after", nn.TorchName(b)+".npy")))
				worst = math.Max(worst, d)
				if d > c.tol {
					t.Errorf("%s after the pass differs by %.2g", nn.TorchName(b), d)
				}
			}
			t.Logf("loss %.10g (want %.10g); %d parameters, %d buffers; largest relative difference %.2g", got, want, len(params), len(buffers), worst)
		})
	}
}

// The upsample weight is stored [k, k, Cout, Cin] so that the checkpoint's HWIO -> OIHW
// conversion yields ConvTranspose2d's [Cin, Cout, k, k]: element (c, o, i, j) of the
// PyTorch tensor is element (i, j, o, c) of ours (hand-checked on one index).
func TestFCNMaskHeadUpsampleLayout(t *testing.T) {
	ctx := context.New()
	if _, err := registry.Build[*det.FCNMaskHead](registry.With(nil, nn.NewScope(ctx, 1)), registry.NewSpec(registry.Heads, "FCNMaskHead",
		map[string]any{"num_convs": 1, "in_channels": 3, "conv_out_channels": 4, "num_classes": 2})); err != nil {
		t.Fatal(err)
	}
	v := ctx.In("upsample").GetVariable("weight")
	if v == nil {
		t.Fatal("no upsample.weight")
	}
	ours := v.MustValue()
	if fmt.Sprint(ours.Shape().Dimensions) != "[2 2 4 4]" {
		t.Fatalf("upsample weight %s", ours.Shape())
	}
	pt, err := engine.ToTorch(ours, "HWIO")
	if err != nil {
		t.Fatal(err)
	}
	a, b := tensors.MustCopyFlatData[float32](ours), tensors.MustCopyFlatData[float32](pt)
	// (c, o, i, j) = (3, 0, 1, 0): PyTorch's offset in [4, 4, 2, 2] is ((3*4+0)*2+1)*2+0 = 50;
	// ours, (i, j, o, c) = (1, 0, 0, 3) in [2, 2, 4, 4], is ((1*2+0)*4+0)*4+3 = 35.
	if a[35] != b[50] {
		t.Errorf("ours[1,0,0,3] = %v, PyTorch's [3,0,1,0] = %v", a[35], b[50])
	}
}

// Configs mmdet rejects or this head does not implement fail validation.
func TestFCNMaskHeadValidate(t *testing.T) {
	for _, bad := range []map[string]any{
		{"num_classes": 0},
		{"num_classes": 3, "upsample_cfg": map[string]any{"type": "bilinear", "scale_factor": 2}},
		{"num_classes": 3, "loss_mask": map[string]any{"type": "CrossEntropyLoss", "use_mask": false, "loss_weight": 1.0}},
		{"num_classes": 3, "conv_kernel_size": 2},
		{"num_classes": 3, "norm_cfg": map[string]any{"type": "GN"}},
	} {
		_, err := registry.Build[*det.FCNMaskHead](registry.With(nil, nn.NewScope(context.New(), 1)), registry.NewSpec(registry.Heads, "FCNMaskHead", bad))
		if err == nil {
			t.Errorf("%v: no error", bad)
		}
	}
}

// mmdet's initialisation at the benchmark's size (256 channels, 80 classes, SyncBN): the
// convolutions kaiming normal fan_out relu (std sqrt(2 / (256 * 9)), mmcv ConvModule, no bias
// before a norm), the deconvolution sqrt(2 / (Cin * 4)) (PyTorch's fan_out of a
// ConvTranspose2d weight [Cin, Cout, 2, 2] is Cin * 4), conv_logits sqrt(2 / 80), biases 0,
// norm weights 1. The sample standard deviations must be within 2% (over 20k+ values each).
func TestFCNMaskHeadInit(t *testing.T) {
	ctx := context.New()
	if _, err := registry.Build[*det.FCNMaskHead](registry.With(nil, nn.NewScope(ctx, 3)), registry.NewSpec(registry.Heads, "FCNMaskHead",
		map[string]any{"num_classes": 80, "norm_cfg": map[string]any{"type": "SyncBN"}})); err != nil {
		t.Fatal(err)
	}
	want := map[string]float64{
		"convs.0.conv.weight": math.Sqrt(2.0 / (256 * 9)), "convs.3.conv.weight": math.Sqrt(2.0 / (256 * 9)),
		"upsample.weight": math.Sqrt(2.0 / (256 * 4)), "conv_logits.weight": math.Sqrt(2.0 / 80),
		"upsample.bias": 0, "conv_logits.bias": 0, "convs.2.bn.bias": 0,
	}
	seen := map[string]bool{}
	for v := range ctx.IterVariables() {
		name := nn.TorchName(v)
		seen[name] = true
		if name == "convs.0.conv.bias" {
			t.Errorf("%s: a convolution before a norm has no bias", name)
		}
		if name == "convs.1.bn.weight" {
			for _, x := range asFloat64(t, v.MustValue()) {
				if x != 1 {
					t.Fatalf("%s: %v, want 1", name, x)
				}
			}
		}
		std, ok := want[name]
		if !ok {
			continue
		}
		vals := asFloat64(t, v.MustValue())
		var ss float64
		for _, x := range vals {
			ss += x * x
		}
		got := math.Sqrt(ss / float64(len(vals)))
		if math.Abs(got-std) > 0.02*std || (std == 0 && got != 0) {
			t.Errorf("%s: std %.5g, want %.5g", name, got, std)
		}
	}
	for name := range want {
		if !seen[name] {
			t.Errorf("no variable %s", name)
		}
	}
}

// In a bfloat16 autocast region the deconvolution's matmul runs in bfloat16 like the
// convolutions, and the logits stay float32 and close to the float32 ones.
func TestFCNMaskHeadAutocast(t *testing.T) {
	ctx := context.New()
	head, err := registry.Build[*det.FCNMaskHead](registry.With(nil, nn.NewScope(ctx, 4)), registry.NewSpec(registry.Heads, "FCNMaskHead",
		map[string]any{"num_convs": 2, "in_channels": 16, "conv_out_channels": 16, "num_classes": 3}))
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(4, 4))
	xv := make([]float32, 2*14*14*16)
	for i := range xv {
		xv[i] = float32(rng.NormFloat64())
	}
	x := tensors.FromFlatDataAndDimensions(xv, 2, 14, 14, 16)
	run := func(amp bool) *tensors.Tensor {
		return context.MustExecOnce(pureGo(t), ctx, func(ctx *context.Context, x *Node) *Node {
			if amp {
				nn.SetAutocast(ctx, x.Graph(), dtypes.BFloat16)
			}
			return head.Forward(x, false)
		}, x)
	}
	full, amp := run(false), run(true)
	if amp.DType() != dtypes.Float32 {
		t.Fatalf("autocast logits are %s", amp.DType())
	}
	if d := maxRelDiff(t, amp, full); d > 0.05 || d == 0 {
		t.Errorf("autocast logits differ from float32 by %.2g, want (0, 0.05]", d)
	}
}

package models_test

import (
	"encoding/json"
	"math"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gomlx/gomlx/pkg/core/dtypes"
	. "github.com/gomlx/gomlx/pkg/core/graph"
	"github.com/gomlx/gomlx/pkg/core/tensors"
	"github.com/gomlx/gomlx/pkg/ml/context"

	"github.com/goselfsup/goselfsup/engine"
	"github.com/goselfsup/goselfsup/internal/pyref"
	"github.com/goselfsup/goselfsup/losses"
	"github.com/goselfsup/goselfsup/models"
	"github.com/goselfsup/goselfsup/models/nn"
	"github.com/goselfsup/goselfsup/registry"
)

// segPython returns the Python with torch and NumPy, or skips the test.
func segPython(t *testing.T) string {
	t.Helper()
	python, err := pyref.Python("torch", "numpy")
	if err != nil {
		t.Skip(err)
	}
	return python
}

// runSegReference runs benchmarks/seg_reference.py in mode on dir.
func runSegReference(t *testing.T, python, mode, dir string) {
	t.Helper()
	cmd := exec.Command(python, filepath.Join("..", "benchmarks", "seg_reference.py"), mode, dir)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("seg_reference.py %s: %v\n%s", mode, err, out)
	}
}

func writeNPY(t *testing.T, path string, tt *tensors.Tensor) {
	t.Helper()
	if err := engine.SaveNPY(path, tt); err != nil {
		t.Fatal(err)
	}
}

func readNPY(t *testing.T, path string) *tensors.Tensor {
	t.Helper()
	tt, err := engine.LoadNPY(path)
	if err != nil {
		t.Fatal(err)
	}
	return tt
}

func flat64(t *testing.T, tt *tensors.Tensor) []float64 {
	t.Helper()
	switch tt.DType() {
	case dtypes.Float64:
		return tensors.MustCopyFlatData[float64](tt)
	case dtypes.Int64:
		v := tensors.MustCopyFlatData[int64](tt)
		out := make([]float64, len(v))
		for i, x := range v {
			out[i] = float64(x)
		}
		return out
	}
	t.Fatalf("unexpected dtype %s", tt.DType())
	return nil
}

// relDiff is ||a - b|| / ||b|| (||a - b|| when b is zero), +Inf for different shapes.
func relDiff(t *testing.T, a, b *tensors.Tensor) float64 {
	t.Helper()
	if !a.Shape().Equal(b.Shape()) {
		t.Logf("shapes differ: %s vs %s", a.Shape(), b.Shape())
		return math.Inf(1)
	}
	av, bv := flat64(t, a), flat64(t, b)
	var d, n float64
	for i := range av {
		d += (av[i] - bv[i]) * (av[i] - bv[i])
		n += bv[i] * bv[i]
	}
	if n == 0 {
		return math.Sqrt(d)
	}
	return math.Sqrt(d / n)
}

func randTensor(rng *rand.Rand, dims ...int) *tensors.Tensor {
	n := 1
	for _, d := range dims {
		n *= d
	}
	v := make([]float64, n)
	for i := range v {
		v[i] = rng.NormFloat64()
	}
	return tensors.FromFlatDataAndDimensions(v, dims...)
}

// TestResizeMatchesPyTorch compares nn.Resize and its gradient with F.interpolate(mode =
// bilinear, align_corners = False) for upsampling, downsampling (by less and more than 2)
// and mixed shapes.
func TestResizeMatchesPyTorch(t *testing.T) {
	python := segPython(t)
	b := pureGo(t)
	rng := rand.New(rand.NewPCG(1, 2))
	for _, tc := range []struct{ h, w, oh, ow int }{
		{5, 7, 11, 13}, {8, 8, 64, 64}, {12, 10, 5, 4}, {13, 17, 3, 2}, {6, 9, 12, 4}, {1, 3, 4, 5},
	} {
		dir := t.TempDir()
		x, r := randTensor(rng, 2, tc.h, tc.w, 3), randTensor(rng, 2, tc.oh, tc.ow, 3)
		writeNPY(t, filepath.Join(dir, "x.npy"), x)
		writeNPY(t, filepath.Join(dir, "r.npy"), r)
		runSegReference(t, python, "resize", dir)
		outs := MustExecOnceN(b, func(x, r *Node) []*Node {
			y := nn.Resize(x, tc.oh, tc.ow)
			return []*Node{y, Gradient(ReduceAllSum(Mul(y, r)), x)[0]}
		}, x, r)
		if d := relDiff(t, outs[0], readNPY(t, filepath.Join(dir, "y.npy"))); d > 1e-12 {
			t.Errorf("%dx%d -> %dx%d: forward differs by %.2g", tc.h, tc.w, tc.oh, tc.ow, d)
		}
		if d := relDiff(t, outs[1], readNPY(t, filepath.Join(dir, "gx.npy"))); d > 1e-12 {
			t.Errorf("%dx%d -> %dx%d: gradient differs by %.2g", tc.h, tc.w, tc.oh, tc.ow, d)
		}
	}
}

// TestSegLossIgnoreIndex compares CrossEntropyLoss's SegLoss with a NumPy computation that
// divides by all pixels (avg_non_ignore = false) or by the labelled ones (true).
func TestSegLossIgnoreIndex(t *testing.T) {
	python := segPython(t)
	b := pureGo(t)
	rng := rand.New(rand.NewPCG(3, 4))
	dir := t.TempDir()
	const n, h, w, c = 2, 5, 6, 21
	logits := randTensor(rng, n, h, w, c)
	labels := make([]int32, n*h*w)
	for i := range labels {
		labels[i] = int32(rng.IntN(c))
		if rng.IntN(3) == 0 {
			labels[i] = 255
		}
	}
	lt := tensors.FromFlatDataAndDimensions(labels, n, h, w)
	writeNPY(t, filepath.Join(dir, "logits.npy"), logits)
	writeNPY(t, filepath.Join(dir, "labels.npy"), lt)
	runSegReference(t, python, "loss", dir)
	want := tensors.MustCopyFlatData[float64](readNPY(t, filepath.Join(dir, "loss.npy")))
	for k, avg := range []bool{false, true} {
		ce := &losses.CrossEntropy{Reduction: "mean", LossWeight: 0.4, AvgNonIgnore: avg}
		got := MustExecOnce(b, func(l, y *Node) *Node { return ce.SegLoss(nil, l, y, 255) }, logits, lt).Value().(float64)
		if math.Abs(got-0.4*want[k]) > 1e-12*math.Abs(want[k]) {
			t.Errorf("avg_non_ignore=%v: loss %.17g, want %.17g", avg, got, 0.4*want[k])
		}
	}
}

// segSpec is the FCN model of a parity test in both implementations' terms.
type segSpec struct {
	StageBlocks []int          `json:"stage_blocks"`
	Strides     []int          `json:"strides"`
	Dilations   []int          `json:"dilations"`
	Contract    bool           `json:"contract_dilation"`
	NumClasses  int            `json:"num_classes"`
	Decode      map[string]any `json:"decode"`
	Aux         map[string]any `json:"aux"`
}

func (s segSpec) config() map[string]any {
	head := func(h map[string]any) map[string]any {
		out := map[string]any{"type": "FCNHead", "num_classes": s.NumClasses, "dropout_ratio": 0.0}
		for k, v := range h {
			if k != "loss_weight" {
				out[k] = v
			}
		}
		out["loss_decode"] = map[string]any{"type": "CrossEntropyLoss", "loss_weight": h["loss_weight"]}
		return out
	}
	return map[string]any{
		"backbone": map[string]any{"type": "ResNet", "depth": 50, "stage_blocks": s.StageBlocks, "strides": s.Strides,
			"dilations": s.Dilations, "contract_dilation": s.Contract, "out_indices": []int{1, 2, 3, 4}},
		"decode_head":    head(s.Decode),
		"auxiliary_head": head(s.Aux),
		"data_preprocessor": map[string]any{"type": "SegDataPreProcessor", "mean": []float64{123.675, 116.28, 103.53},
			"std": []float64{58.395, 57.12, 57.375}, "bgr_to_rgb": true},
	}
}

// TestFCNParityWithPyTorch compares the EncoderDecoder (dilated ResNet-50 D8, FCN decode
// and auxiliary heads) in float64 with the plain-torch reference: eval-mode logits resized
// to the input, the train-mode loss, the gradients of every parameter and the batch-norm
// buffers after the step: mmseg's FCN R50-D8 with its head widths, and a short network
// without contract_dilation whose layer3 has a block with stride 2 and dilation 2.
func TestFCNParityWithPyTorch(t *testing.T) {
	python := segPython(t)
	for _, tc := range []struct {
		name               string
		blocks             []int
		strides, dilations []int
		contract           bool
		decode, aux        int // the heads' channels
		size, classes      int
	}{
		{"ResNet-50 D8", []int{3, 4, 6, 3}, []int{1, 2, 1, 1}, []int{1, 1, 2, 4}, true, 512, 256, 64, 21},
		{"short ResNet D16 with a strided dilated block", []int{1, 1, 2, 2}, []int{1, 2, 2, 1}, []int{1, 1, 2, 2}, false, 64, 32, 48, 5},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if testing.Short() && tc.blocks[2] > 2 {
				t.Skip("the full ResNet-50 in -short mode")
			}
			spec := segSpec{StageBlocks: tc.blocks, Strides: tc.strides, Dilations: tc.dilations, Contract: tc.contract, NumClasses: tc.classes,
				Decode: map[string]any{"in_channels": 2048, "in_index": 3, "channels": tc.decode, "num_convs": 2, "concat_input": true, "loss_weight": 1.0},
				Aux:    map[string]any{"in_channels": 1024, "in_index": 2, "channels": tc.aux, "num_convs": 1, "concat_input": false, "loss_weight": 0.4}}
			fcnParity(t, python, spec, tc.size)
		})
	}
}

func fcnParity(t *testing.T, python string, spec segSpec, size int) {
	dir := t.TempDir()
	ctx := context.New()
	scope := nn.NewScope(ctx, 5).WithDType(dtypes.Float64)
	m, err := registry.Build[*models.EncoderDecoder](registry.With(nil, scope), registry.NewSpec("algorithms", "EncoderDecoder", spec.config()))
	if err != nil {
		t.Fatal(err)
	}
	js, _ := json.Marshal(spec)
	if err := os.WriteFile(filepath.Join(dir, "spec.json"), js, 0o644); err != nil {
		t.Fatal(err)
	}
	params, buffers := writeTorchState(t, ctx, filepath.Join(dir, "state"), func(name string) bool {
		return strings.HasPrefix(name, "backbone.") || strings.Contains(name, "_head.")
	})
	rng := rand.New(rand.NewPCG(7, 8))
	const batch = 2
	images := make([]uint8, batch*size*size*3)
	for i := range images {
		images[i] = uint8(rng.IntN(256))
	}
	masks := make([]int32, batch*size*size)
	for i := range masks {
		masks[i] = int32(rng.IntN(spec.NumClasses))
		if rng.IntN(5) == 0 {
			masks[i] = 255
		}
	}
	imgT := tensors.FromFlatDataAndDimensions(images, batch, size, size, 3)
	maskT := tensors.FromFlatDataAndDimensions(masks, batch, size, size)
	writeNPY(t, filepath.Join(dir, "images.npy"), imgT)
	writeNPY(t, filepath.Join(dir, "masks.npy"), maskT)
	start := time.Now()
	runSegReference(t, python, "model", dir)
	t.Logf("PyTorch: %v", time.Since(start))

	b := pureGo(t)
	start = time.Now()
	logits := context.MustExecOnce(b, ctx, func(ctx *context.Context, images *Node) *Node { return m.Logits(images) }, imgT)
	if d := relDiff(t, logits, readNPY(t, filepath.Join(dir, "logits.npy"))); d > 1e-6 {
		t.Errorf("eval logits differ by %.2g", d)
	} else {
		t.Logf("eval logits %s: relative difference %.2g (%v)", logits.Shape(), d, time.Since(start))
	}

	start = time.Now()
	outs := context.MustExecOnceN(b, ctx, func(ctx *context.Context, images, masks *Node) []*Node {
		loss := m.Loss(ctx, models.Batch{Images: images, Masks: masks})
		nodes := make([]*Node, len(params))
		for i, p := range params {
			nodes[i] = p.v.ValueGraph(images.Graph())
		}
		return append([]*Node{loss}, Gradient(loss, nodes...)...)
	}, imgT, maskT)
	t.Logf("train step: %v", time.Since(start))
	want := tensors.MustCopyFlatData[float64](readNPY(t, filepath.Join(dir, "loss.npy")))[0]
	got := outs[0].Value().(float64)
	if math.Abs(got-want) > 1e-6*math.Abs(want) {
		t.Errorf("loss %.15g, want %.15g", got, want)
	}
	worst := checkTorchGrads(t, dir, params, buffers, outs[1:], 1e-6)
	t.Logf("loss %.10g; %d gradients and %d buffers, largest relative difference %.2g", got, len(params), len(buffers), worst)
}

// torchParam is a model variable with its PyTorch name.
type torchParam struct {
	name string
	v    *context.Variable
}

// writeTorchState writes the variables of ctx whose PyTorch names keep accepts as dir/<name>.npy
// in PyTorch's layouts (convolution kernels OIHW), for a reference to load, and returns them:
// the trainable ones (params) and the others (buffers), in the context's order.
func writeTorchState(t *testing.T, ctx *context.Context, dir string, keep func(name string) bool) (params, buffers []torchParam) {
	t.Helper()
	for v := range ctx.IterVariables() {
		name := nn.TorchName(v)
		if !keep(name) {
			continue
		}
		tt := v.MustValue()
		if tt.Rank() == 4 {
			var err error
			if tt, err = engine.ToTorch(tt, "HWIO"); err != nil {
				t.Fatal(err)
			}
		}
		writeNPY(t, filepath.Join(dir, name+".npy"), tt)
		if v.Trainable {
			params = append(params, torchParam{name, v})
		} else {
			buffers = append(buffers, torchParam{name, v})
		}
	}
	return params, buffers
}

// checkTorchGrads compares grads (one per param, HWIO kernels) with the reference's
// dir/grads/<name>.npy and the buffers' values now with its dir/after/<name>.npy, each to tol
// relative, and returns the largest difference.
func checkTorchGrads(t *testing.T, dir string, params, buffers []torchParam, grads []*tensors.Tensor, tol float64) (worst float64) {
	t.Helper()
	for i, p := range params {
		g := grads[i]
		if g.Rank() == 4 {
			var err error
			if g, err = engine.ToTorch(g, "HWIO"); err != nil {
				t.Fatal(err)
			}
		}
		d := relDiff(t, g, readNPY(t, filepath.Join(dir, "grads", p.name+".npy")))
		worst = max(worst, d)
		if d > tol {
			t.Errorf("gradient of %s differs by %.2g", p.name, d)
		}
	}
	for _, p := range buffers {
		d := relDiff(t, p.v.MustValue(), readNPY(t, filepath.Join(dir, "after", p.name+".npy")))
		worst = max(worst, d)
		if d > tol {
			t.Errorf("%s after the pass differs by %.2g", p.name, d)
		}
	}
	return worst
}

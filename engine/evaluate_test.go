package engine_test

import (
	"context"
	"math"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gomlx/gomlx/pkg/core/dtypes"
	"github.com/gomlx/gomlx/pkg/core/tensors"

	"github.com/goselfsup/goselfsup/engine"
	"github.com/goselfsup/goselfsup/models"
	"github.com/goselfsup/goselfsup/registry"
)

// trainedTiny trains the tiny NPID for one epoch and returns the runner and its checkpoint.
func trainedTiny(t *testing.T) (*engine.Runner, string) {
	t.Helper()
	dir := t.TempDir()
	r, err := train(t, dir, engine.Options{}, context.Background(), "train_cfg.max_epochs=1", "param_scheduler=[]", "custom_hooks=[]")
	if err != nil {
		t.Fatal(err)
	}
	return r, filepath.Join(dir, "epoch_1.ckpt")
}

func TestExtractFromCheckpoint(t *testing.T) {
	r, ckpt := trainedTiny(t)
	_, cfg, _, err := engine.CheckpointConfig(ckpt)
	if err != nil {
		t.Fatal(err)
	}
	e, err := engine.NewEvaluation(cfg, engine.EvalOptions{Checkpoint: ckpt, Console: &strings.Builder{}})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	l, err := e.Loader(cfg.ValDataloader)
	if err != nil {
		t.Fatal(err)
	}
	// The tiny ResNet-10 at 8x8: stem 4 channels 8x8, stages 4/8/16/32 channels at 8, 4, 2
	// and 1 pixels; pooled adaptively to the resnet18 table's 12, 12, 8, 6 and 4.
	pool, err := models.NewMultiPooling("adaptive", "resnet18", []int{0, 1, 2, 3, 4})
	if err != nil {
		t.Fatal(err)
	}
	names := []string{"backbone", "neck", "feat1", "feat2", "feat3", "feat4", "feat5"}
	set, err := e.Extract(context.Background(), l, names, pool, "test")
	if err != nil {
		t.Fatal(err)
	}
	wantDims := map[string]int{"backbone": 32, "neck": 16, "feat1": 4 * 144, "feat2": 4 * 144, "feat3": 8 * 64, "feat4": 16 * 36, "feat5": 32 * 16}
	for n, d := range wantDims {
		if f := set.Features[n]; f.N != 40 || f.Dim != d {
			t.Errorf("%s: %d x %d, want 40 x %d", n, f.N, f.Dim, d)
		}
	}

	// The backbone features equal those of the training run's own extractor: the checkpoint
	// restored every weight.
	want, labels, err := r.Extract(context.Background(), l, "runner")
	if err != nil {
		t.Fatal(err)
	}
	bb := set.Features["backbone"]
	for i := range want {
		for j, v := range want[i] {
			if math.Abs(float64(v-bb.Row(i)[j])) > 1e-5 {
				t.Fatalf("sample %d value %d: %v from the checkpoint, %v in the run", i, j, bb.Row(i)[j], v)
			}
		}
		if labels[i] != set.Labels[i] {
			t.Fatalf("label %d: %d, want %d", i, set.Labels[i], labels[i])
		}
	}
	// Layer 4 is 1x1 at 8x8 inputs, so each channel of feat5 (4x4, channel-major) repeats the
	// backbone's globally pooled value, and the neck's embedding has unit length.
	f5 := set.Features["feat5"]
	for i := range 40 {
		for c := range 32 {
			for k := range 16 {
				if got, w := f5.Row(i)[c*16+k], bb.Row(i)[c]; math.Abs(float64(got-w)) > 1e-5 {
					t.Fatalf("sample %d feat5[%d] = %v, want the channel's value %v", i, c*16+k, got, w)
				}
			}
		}
		var n float64
		for _, v := range set.Features["neck"].Row(i) {
			n += float64(v) * float64(v)
		}
		if math.Abs(n-1) > 1e-5 {
			t.Errorf("sample %d: neck embedding of squared norm %v", i, n)
		}
	}

	// Round trip through .npy files, which NumPy reads too.
	dir := t.TempDir()
	if _, err := set.WriteNPY(dir, "val"); err != nil {
		t.Fatal(err)
	}
	back, err := engine.ReadFeatureSet(dir, "val", names)
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range names {
		if a, b := back.Features[n], set.Features[n]; a.N != b.N || a.Dim != b.Dim || !equalFloats(a.Data, b.Data) {
			t.Errorf("%s changed in the round trip", n)
		}
	}
	if py, err := exec.LookPath("python3"); err == nil {
		out, err := exec.Command(py, "-c", `import sys, numpy as np
d = sys.argv[1]
f = np.load(d + "/val_feat3.npy"); l = np.load(d + "/val_labels.npy")
print(f.dtype, f.shape, l.dtype, l.shape)`, dir).CombinedOutput()
		if strings.Contains(string(out), "No module named 'numpy'") {
			t.Log("NumPy is absent; not checked with it")
		} else if got := strings.TrimSpace(string(out)); err != nil || got != "float32 (40, 512) int64 (40,)" {
			t.Errorf("NumPy read %q (%v)", got, err)
		}
	}

	// The memory bank is the checkpoint's, and a random initialisation differs.
	bank, err := e.MemoryBank()
	if err != nil || bank.N != 96 || bank.Dim != 16 {
		t.Fatalf("memory bank %d x %d (%v), want 96 x 16", bank.N, bank.Dim, err)
	}
	rnd, err := engine.NewEvaluation(cfg, engine.EvalOptions{Console: &strings.Builder{}})
	if err != nil {
		t.Fatal(err)
	}
	defer rnd.Close()
	rset, err := rnd.Extract(context.Background(), l, []string{"backbone"}, nil, "random")
	if err != nil {
		t.Fatal(err)
	}
	if equalFloats(rset.Features["backbone"].Data, bb.Data) {
		t.Error("the random initialisation gives the trained features")
	}
	if _, err := rnd.MemoryBank(); err == nil {
		t.Error("a random initialisation has a memory bank")
	}
}

func equalFloats(a, b []float32) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// linearConfig is a linear evaluation of the tiny NPID's backbone on DemoShapes.
func linearConfig(t *testing.T, head map[string]any, outIndices []int, sets ...string) (*registry.Tree, *engine.Config) {
	t.Helper()
	model := map[string]any{
		"type":              "ImageClassifier",
		"data_preprocessor": map[string]any{"mean": []float64{128, 128, 128}, "std": []float64{64, 64, 64}, "to_rgb": true},
		"backbone": map[string]any{"type": "ResNet_CIFAR", "depth": 18, "stage_blocks": []int{1, 1, 1, 1}, "stem_channels": 4,
			"base_channels": 4, "out_indices": outIndices, "frozen_stages": 4},
		"head": head,
	}
	evaluator := map[string]any{"type": "Accuracy", "topk": []int{1, 5}}
	if len(outIndices) == 1 {
		model["neck"] = map[string]any{"type": "GlobalAveragePooling"}
	} else {
		evaluator = map[string]any{"type": "MultiHeadEvaluator", "metrics": evaluator}
	}
	return testConfig(t, map[string]any{
		"backend":    "go",
		"randomness": map[string]any{"seed": 3},
		"model":      model,
		"train_dataloader": map[string]any{
			"batch_size": 16, "drop_last": true, "sampler": map[string]any{"type": "DefaultSampler", "shuffle": true},
			"dataset": map[string]any{"type": "DemoShapes", "num_samples": 96, "size": 8, "seed": 1},
		},
		"val_dataloader": map[string]any{
			"batch_size": 20, "dataset": map[string]any{"type": "DemoShapes", "num_samples": 40, "size": 8, "seed": 2},
		},
		"val_evaluator":   evaluator,
		"optim_wrapper":   map[string]any{"optimizer": map[string]any{"type": "SGD", "lr": 1.0, "momentum": 0.9, "weight_decay": 0.0}},
		"param_scheduler": []any{},
		"train_cfg":       map[string]any{"type": "EpochBasedTrainLoop", "max_epochs": 4, "val_interval": 2},
		"default_hooks":   map[string]any{"checkpoint": map[string]any{"type": "CheckpointHook", "interval": 4}},
	}, "linear", sets...)
}

func TestLinearEvaluationKeepsTheBackboneFrozen(t *testing.T) {
	_, ckpt := trainedTiny(t)
	pre, err := engine.LoadCheckpoint(ckpt)
	if err != nil {
		t.Fatal(err)
	}
	tree, cfg := linearConfig(t, map[string]any{"type": "LinearClsHead", "num_classes": 10, "in_channels": 32, "topk": []int{1, 5}}, []int{4})
	dir := t.TempDir()
	r, err := engine.NewRunner(tree, cfg, engine.Options{WorkDir: dir, Console: &strings.Builder{}, Pretrained: ckpt})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if err := r.Train(context.Background()); err != nil {
		t.Fatal(err)
	}
	post, err := engine.LoadCheckpoint(filepath.Join(dir, "epoch_4.ckpt"))
	if err != nil {
		t.Fatal(err)
	}
	compared := 0
	for name, tt := range post.Tensors {
		if !strings.HasPrefix(name, "backbone.") {
			continue
		}
		compared++
		if tt.DType() == dtypes.Int64 { // num_batches_tracked
			if a, b := tensors.MustCopyFlatData[int64](tt), tensors.MustCopyFlatData[int64](pre.Tensors[name]); a[0] != b[0] {
				t.Fatalf("%s changed in linear evaluation: %v, pretrained %v", name, a, b)
			}
			continue
		}
		a, b := flat(t, tt), flat(t, pre.Tensors[name])
		if len(a) != len(b) {
			t.Fatalf("%s: %d values, the pretrained %d", name, len(a), len(b))
		}
		for i := range a {
			if a[i] != b[i] {
				t.Fatalf("%s changed in linear evaluation: %v, pretrained %v", name, a[i], b[i])
			}
		}
	}
	if compared < 40 {
		t.Errorf("compared %d backbone tensors", compared)
	}
	if a := flat(t, post.Tensors["head.fc.bias"]); equalFloats(a, make([]float32, len(a))) {
		t.Error("the head's bias did not train")
	}
	for _, k := range []string{"accuracy/top1", "accuracy/top5"} {
		if v, ok := r.Metrics[k]; !ok || v < 0 || v > 100 {
			t.Errorf("metric %s = %v (%v)", k, v, ok)
		}
	}
	if r.Metrics["accuracy/top5"] < r.Metrics["accuracy/top1"] {
		t.Errorf("top-5 %v below top-1 %v", r.Metrics["accuracy/top5"], r.Metrics["accuracy/top1"])
	}
}

func TestMultiHeadEvaluation(t *testing.T) {
	tree, cfg := linearConfig(t, map[string]any{"type": "MultiClsHead", "pool_type": "adaptive", "in_indices": []int{0, 1, 2, 3, 4},
		"backbone": "resnet18", "num_classes": 10, "norm_cfg": map[string]any{"type": "BN", "affine": false, "momentum": 0.1}},
		[]int{0, 1, 2, 3, 4},
		"optim_wrapper.optimizer.lr=0.01", "optim_wrapper.optimizer.nesterov=true", "optim_wrapper.optimizer.weight_decay=1e-4",
		"optim_wrapper.paramwise_cfg.norm_decay_mult=0.0", "train_cfg.max_epochs=2")
	r, err := engine.NewRunner(tree, cfg, engine.Options{WorkDir: t.TempDir(), Console: &strings.Builder{}})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if err := r.Train(context.Background()); err != nil {
		t.Fatal(err)
	}
	for h := 1; h <= 5; h++ {
		for _, k := range []string{"top1", "top5"} {
			if _, ok := r.Metrics[evalKey(h, k)]; !ok {
				t.Errorf("no %s in %v", evalKey(h, k), r.Metrics)
			}
		}
	}
	// mmselfsup's head names: norms.k (no affine parameters) and fcs.k, one per head.
	ck, err := r.Checkpoint()
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"head.norms.0.running_mean", "head.fcs.4.weight"} {
		if _, ok := ck.Tensors[name]; !ok {
			t.Errorf("no %s", name)
		}
	}
	if _, ok := ck.Tensors["head.norms.0.weight"]; ok {
		t.Error("affine = false and the head's norm has a weight")
	}
	if w := ck.Tensors["head.fcs.0.weight"]; w.Shape().Dimensions[1] != 4*144 {
		t.Errorf("head 1 takes %v", w.Shape())
	}
}

func evalKey(head int, k string) string { return "head" + string(rune('0'+head)) + "_accuracy/" + k }

// flat returns a float32 tensor's values (the tiny configs train in float32).
func flat(t *testing.T, x *tensors.Tensor) []float32 {
	t.Helper()
	if x == nil {
		t.Fatal("no such tensor")
	}
	return tensors.MustCopyFlatData[float32](x)
}

package cli

import (
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// demoBenchmark is a benchmark config over the demo's shapes: the demo's 128 training images
// (the model's training set, so that the memory bank fits) and 64 other images as queries.
const demoBenchmark = `
[pool_cfg]
type = "MultiPooling"
pool_type = "adaptive"
in_indices = [3, 4]
backbone = "resnet18"

[train_dataloader]
batch_size = 50
dataset = { type = "DemoShapes", num_samples = 128, size = 16, seed = 1 }

[val_dataloader]
batch_size = 50
dataset = { type = "DemoShapes", num_samples = 64, size = 16, seed = 2 }
`

const demoKNN = demoBenchmark + `
[val_evaluator]
type = "WeightedKNN"
num_knn = [1, 5, 20]
temperature = 0.07
`

const demoSVM = demoBenchmark + `
[val_evaluator]
type = "VOC07SVM"
costs = [1.0, 10.0]
features = ["backbone", "feat5"]
low_shot = { shots = [1, 2], samples = 2 }
`

func writeFile(t *testing.T, dir, name, text string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func run(tool func([]string, io.Writer, io.Writer) int, args ...string) (int, string, string) {
	var out, errOut strings.Builder
	code := tool(args, &out, &errOut)
	return code, out.String(), errOut.String()
}

// trainDemo trains the demo for one epoch on 128 images and returns its checkpoint.
func trainDemo(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	code, _, errOut := runTrain("--work-dir", dir, "--set", "train_cfg.max_epochs=1",
		"--set", "train_dataloader.dataset.num_samples=128", "--set", "model.memory_bank.length=128", "--set", "custom_hooks=[]")
	if code != 0 {
		t.Fatalf("training: exit %d: %s", code, errOut)
	}
	return filepath.Join(dir, "epoch_1.ckpt")
}

// hasRow reports whether a line of a printed table starts with first.
func hasRow(out, first string) bool {
	for _, line := range strings.Split(out, "\n") {
		if f := strings.Fields(line); len(f) > 0 && f[0] == first {
			return true
		}
	}
	return false
}

func readMetrics(t *testing.T, dir string) map[string]any {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(dir, "metrics.json"))
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(data, &m); err != nil {
		t.Fatal(err)
	}
	return m
}

func TestEvaluationTools(t *testing.T) {
	ckpt := trainDemo(t)
	dir := t.TempDir()
	knnCfg := writeFile(t, dir, "knn.toml", demoKNN)
	svmCfg := writeFile(t, dir, "svm.toml", demoSVM)

	// extract: the pool_cfg's features by default, NumPy files for both splits.
	work := filepath.Join(dir, "extract")
	code, out, errOut := run(Extract, knnCfg, ckpt, "--work-dir", work)
	if code != 0 {
		t.Fatalf("extract: exit %d: %s", code, errOut)
	}
	for _, f := range []string{"train_feat4.npy", "train_feat5.npy", "train_labels.npy", "val_feat4.npy", "val_feat5.npy", "val_labels.npy"} {
		if !strings.Contains(out, filepath.Join(work, "features", f)) {
			t.Errorf("extract did not write %s:\n%s", f, out)
		}
	}
	code, _, errOut = run(Extract, knnCfg, ckpt, "--work-dir", work, "--features", "backbone,neck")
	if code != 0 {
		t.Fatalf("extract --features: exit %d: %s", code, errOut)
	}

	// knn: from the saved features and extracting afresh, the same numbers.
	k1 := filepath.Join(dir, "knn1")
	if code, out, errOut = run(KNN, knnCfg, ckpt, "--work-dir", k1, "--features-dir", filepath.Join(work, "features")); code != 0 {
		t.Fatalf("knn: exit %d: %s", code, errOut)
	}
	if !strings.Contains(out, "top-1") || !hasRow(out, "20") {
		t.Errorf("knn printed:\n%s", out)
	}
	k2 := filepath.Join(dir, "knn2")
	if code, _, errOut = run(KNN, knnCfg, ckpt, "--work-dir", k2); code != 0 {
		t.Fatalf("knn: exit %d: %s", code, errOut)
	}
	m1, m2 := readMetrics(t, k1), readMetrics(t, k2)
	for _, k := range []string{"knn_top1_k1", "knn_top1_k5", "knn_top5_k20"} {
		if m1[k] == nil || m1[k] != m2[k] {
			t.Errorf("%s: %v from saved features, %v extracted", k, m1[k], m2[k])
		}
	}
	// lemniscate's variant and the random-init baseline run too.
	if code, _, errOut = run(KNN, knnCfg, ckpt, "--work-dir", filepath.Join(dir, "knn3"), "--memory-bank"); code != 0 {
		t.Fatalf("knn --memory-bank: exit %d: %s", code, errOut)
	}
	if m := readMetrics(t, filepath.Join(dir, "knn3")); m["memory_bank"] != true || m["train"] != 128.0 {
		t.Errorf("knn --memory-bank metrics: %v", m)
	}
	if code, _, errOut = run(KNN, knnCfg, "--model-config", DemoConfig, "--work-dir", filepath.Join(dir, "knn4")); code != 0 {
		t.Fatalf("knn at random init: exit %d: %s", code, errOut)
	}
	if code, _, errOut = run(KNN, knnCfg); code != 1 || !strings.Contains(errOut, "--model-config") {
		t.Errorf("knn without a model: exit %d: %s", code, errOut)
	}
	if code, _, errOut = run(KNN, svmCfg, ckpt, "--work-dir", filepath.Join(dir, "knn5")); code != 1 || !strings.Contains(errOut, "not WeightedKNN") {
		t.Errorf("knn on an SVM config: exit %d: %s", code, errOut)
	}

	// svm: per feature, the mAP, the one-vs-rest accuracy and the low-shot runs.
	s := filepath.Join(dir, "svm")
	if code, out, errOut = run(SVM, svmCfg, ckpt, "--work-dir", s); code != 0 {
		t.Fatalf("svm: exit %d: %s", code, errOut)
	}
	m := readMetrics(t, s)
	for _, k := range []string{"backbone_svm_map", "backbone_svm_accuracy", "feat5_svm_map", "feat5_lowshot_k2_map"} {
		if v, ok := m[k].(float64); !ok || v < 0 || v > 100 {
			t.Errorf("svm metric %s = %v", k, m[k])
		}
	}
	if !strings.Contains(out, "feat5 low-shot mAP by k:") {
		t.Errorf("svm printed:\n%s", out)
	}
}

func TestLinearTool(t *testing.T) {
	ckpt := trainDemo(t)
	dir := t.TempDir()
	cfg := writeFile(t, dir, "linear.toml", `
backend = "go"
param_scheduler = [{ type = "MultiStepLR", by_epoch = true, milestones = [1], gamma = 0.1 }]
train_cfg = { type = "EpochBasedTrainLoop", max_epochs = 2 }
val_evaluator = { type = "Accuracy", topk = [1, 5] }
optim_wrapper = { optimizer = { type = "SGD", lr = 30.0, momentum = 0.9, weight_decay = 0.0 } }

[model]
type = "ImageClassifier"
data_preprocessor = { mean = [123.675, 116.28, 103.53], std = [58.395, 57.12, 57.375], to_rgb = true }
backbone = { type = "ResNet_CIFAR", depth = 18, stage_blocks = [1, 1, 1, 1], stem_channels = 8, base_channels = 8, frozen_stages = 4 }
neck = { type = "GlobalAveragePooling" }
head = { type = "LinearClsHead", num_classes = 10, in_channels = 64, topk = [1, 5] }

[train_dataloader]
batch_size = 32
sampler = { type = "DefaultSampler", shuffle = true }
dataset = { type = "DemoShapes", num_samples = 128, size = 16, seed = 1, pipeline = [{ type = "RandomFlip", prob = 0.5 }] }

[val_dataloader]
batch_size = 50
dataset = { type = "DemoShapes", num_samples = 64, size = 16, seed = 2 }
`)
	work := filepath.Join(dir, "linear")
	code, out, errOut := run(Linear, cfg, ckpt, "--work-dir", work)
	if code != 0 {
		t.Fatalf("linear: exit %d: %s", code, errOut)
	}
	if !strings.Contains(out, "accuracy/top1") || !strings.Contains(errOut, "loaded the pretrained backbone") {
		t.Errorf("linear printed:\n%s\n%s", out, errOut)
	}
	if code, _, errOut = run(Linear, cfg, "--random-init", "--work-dir", filepath.Join(dir, "rnd")); code != 0 {
		t.Fatalf("linear --random-init: exit %d: %s", code, errOut)
	}
	if code, _, _ = run(Linear, cfg); code != exitUsage {
		t.Errorf("linear without a checkpoint or --random-init: exit %d", code)
	}
}

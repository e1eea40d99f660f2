package cli

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func runTrain(args ...string) (int, string, string) {
	var out, errOut strings.Builder
	code := Train(args, &out, &errOut)
	return code, out.String(), errOut.String()
}

// The demo config, shrunk: it trains, and its work_dir explains the run.
func TestTrainDemoSmall(t *testing.T) {
	dir := t.TempDir()
	code, out, errOut := runTrain("--work-dir", dir,
		"--set", "train_cfg.max_epochs=1",
		"--set", "train_dataloader.dataset.num_samples=128",
		"--set", "model.memory_bank.length=128",
		"--set", "val_dataloader.dataset.num_samples=50",
		"--set", "custom_hooks.0.num_knn=[5, 20]",
		"--set", "default_hooks.logger.interval=1")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	run := runDir(t, dir)
	var m map[string]float64
	data, err := os.ReadFile(filepath.Join(run, "metrics.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(data, &m); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"knn_top1_k5", "knn_top1_k20", "random_init_knn_top1_k5", "random_init_knn_top1_k20"} {
		if _, ok := m[k]; !ok || !strings.Contains(out, strings.TrimPrefix(k, "random_init_")+" ") {
			t.Errorf("metrics lack %s: %v\n%s", k, m, out)
		}
	}
	cfg, _ := os.ReadFile(filepath.Join(run, "config.toml"))
	if !strings.Contains(string(cfg), "max_epochs = 1") || !strings.Contains(string(cfg), "# The merged config of goselfsup::demo/npid_shapes.toml") {
		t.Errorf("config.toml:\n%s", cfg)
	}
	if !strings.Contains(errOut, "Epoch(train) [1][2/2]") {
		t.Errorf("the console log lacks the last iteration:\n%s", errOut)
	}
	// The final table: k in numeric order, the random-init value beside the trained one.
	k5, k20 := strings.Index(out, "knn_top1_k5 "), strings.Index(out, "knn_top1_k20 ")
	if k5 < 0 || k20 < k5 || !strings.Contains(out, "trained  random init") || strings.Contains(out, "random_init_knn") {
		t.Errorf("the final table:\n%s", out)
	}
}

// runDir returns the only run folder of a work_dir.
func runDir(t *testing.T, workDir string) string {
	t.Helper()
	runs, _ := filepath.Glob(filepath.Join(workDir, "2*_*"))
	if len(runs) != 1 {
		t.Fatalf("%s has run folders %v, want one", workDir, runs)
	}
	return runs[0]
}

// A second run in the same work_dir leaves the first one's log, config and metrics as they
// were, and its checkpoints stay where --resume finds them.
func TestSecondRunKeepsTheFirst(t *testing.T) {
	dir := t.TempDir()
	args := []string{"--work-dir", dir, "--set", "train_cfg.max_epochs=1", "--set", "train_dataloader.dataset.num_samples=64",
		"--set", "model.memory_bank.length=64", "--set", "custom_hooks=[]"}
	if code, _, errOut := runTrain(args...); code != 0 {
		t.Fatalf("first run: exit %d: %s", code, errOut)
	}
	first := runDir(t, dir)
	before := map[string][]byte{}
	for _, f := range []string{"config.toml", "log.jsonl", "metrics.json", filepath.Base(first) + ".log"} {
		data, err := os.ReadFile(filepath.Join(first, f))
		if err != nil {
			t.Fatal(err)
		}
		before[f] = data
	}
	if code, _, errOut := runTrain(append(args, "--set", "optim_wrapper.optimizer.lr=0.01")...); code != 0 {
		t.Fatalf("second run: exit %d: %s", code, errOut)
	}
	runs, _ := filepath.Glob(filepath.Join(dir, "2*_*"))
	if len(runs) != 2 {
		t.Fatalf("run folders %v, want two", runs)
	}
	for f, data := range before {
		now, err := os.ReadFile(filepath.Join(first, f))
		if err != nil || string(now) != string(data) {
			t.Errorf("the first run's %s changed (%v)", f, err)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "epoch_1.ckpt")); err != nil {
		t.Error("no checkpoint in the work_dir")
	}
}

// The flagship config without ImageNet fails at once, naming the file and the README
// section on data layout.
func TestTrainWithoutImageNet(t *testing.T) {
	t.Chdir(t.TempDir())
	start := time.Now()
	code, _, errOut := runTrain("configs/npid/resnet50_8xb32-steplr-200e.toml", "--set", "env_cfg.num_devices=1",
		"--set", "model.memory_bank.length=1000", "--set", "backend=go")
	if code != 1 {
		t.Fatalf("exit %d, want 1: %s", code, errOut)
	}
	for _, want := range []string{filepath.Join("data", "imagenet", "meta", "train.txt") + " not found", `"Datasets" in README.md`} {
		if !strings.Contains(errOut, want) {
			t.Errorf("stderr lacks %q:\n%s", want, errOut)
		}
	}
	if d := time.Since(start); d > 30*time.Second {
		t.Errorf("failing took %s", d)
	}
	// As shipped (8 devices): the missing data is named, not the devices, and nothing is
	// written.
	code, _, errOut = runTrain("configs/npid/resnet50_8xb32-steplr-200e.toml", "--set", "backend=go", "--work-dir", "wd")
	if code != 1 || !strings.Contains(errOut, "train.txt not found") || strings.Contains(errOut, "devices") {
		t.Errorf("eight devices on a CPU without ImageNet: exit %d: %s", code, errOut)
	}
	if _, err := os.Stat("wd"); err == nil {
		t.Error("a run that failed to start left its work_dir")
	}
}

// The flagship recipe, ResNet-50 with 65,536 negatives and SyncBN, on generated 224x224
// images and the CPU engine's two virtual devices: it says once what it changes, logs its
// devices and batches, then trains two iterations.
func TestFlagshipOnTwoVirtualDevices(t *testing.T) {
	if testing.Short() {
		t.Skip("ResNet-50 on the CPU")
	}
	dir := t.TempDir()
	code, _, errOut := runTrain("configs/npid/resnet50_8xb32-steplr-200e.toml", "--work-dir", dir, "--set", `backend="go:devices=2"`,
		"--set", `train_dataloader.dataset={_delete_=true, type="DemoShapes", num_samples=4, size=224}`,
		"--set", "train_dataloader.batch_size=1", "--set", "model.memory_bank.length=4",
		"--set", "train_cfg.max_epochs=1", "--set", "param_scheduler=[]", "--set", "default_hooks.logger.interval=1")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	warning := "WARNING - env_cfg.num_devices = 8, but the backend has 2 device(s): the run trains on 2, 2 images a step instead of 8"
	if strings.Count(errOut, "WARNING") != 1 || !strings.Contains(errOut, warning) {
		t.Errorf("want one warning %q:\n%s", warning, errOut)
	}
	if !strings.Contains(errOut, "data parallel  devices: 2  batch_per_device: 1  global_batch: 2  lr: 3.0000e-02  lr_scaled: false") {
		t.Errorf("the log lacks the devices and batches:\n%s", errOut)
	}
	if !strings.Contains(errOut, "Epoch(train) [1][2/2]") {
		t.Errorf("two iterations did not run:\n%s", errOut)
	}
}

// --auto-scale-lr turns on auto_scale_lr; a config without its base batch is an error that
// names the key.
func TestAutoScaleLRFlag(t *testing.T) {
	t.Chdir(t.TempDir())
	code, _, errOut := runTrain("--auto-scale-lr", "--work-dir", "wd")
	if code != 1 || !strings.Contains(errOut, "auto_scale_lr.base_batch_size") {
		t.Errorf("the demo (no auto_scale_lr) with --auto-scale-lr: exit %d: %s", code, errOut)
	}
}

// The final table lists summary metrics; per-class ones (IoU.person) stay in metrics.json.
func TestPrintMetricsLeavesPerClassValues(t *testing.T) {
	var b strings.Builder
	printMetrics(&b, map[string]float64{"mIoU": 41.5, "aAcc": 80, "IoU.person": 60, "Acc.person": 70}, "run")
	out := b.String()
	if !strings.Contains(out, "mIoU") || !strings.Contains(out, "aAcc") || strings.Contains(out, "person") {
		t.Errorf("printed:\n%s", out)
	}
}

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
	var m map[string]float64
	data, err := os.ReadFile(filepath.Join(dir, "metrics.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(data, &m); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"knn_top1_k5", "knn_top1_k20", "random_init_knn_top1_k5", "random_init_knn_top1_k20"} {
		if _, ok := m[k]; !ok || !strings.Contains(out, k) {
			t.Errorf("metrics lack %s: %v\n%s", k, m, out)
		}
	}
	cfg, _ := os.ReadFile(filepath.Join(dir, "config.toml"))
	if !strings.Contains(string(cfg), "max_epochs = 1") || !strings.Contains(string(cfg), "# The merged config of goselfsup::demo/npid_shapes.toml") {
		t.Errorf("config.toml:\n%s", cfg)
	}
	if !strings.Contains(errOut, "Epoch(train) [1][2/2]") {
		t.Errorf("the console log lacks the last iteration:\n%s", errOut)
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
	code, _, errOut = runTrain("configs/npid/resnet50_8xb32-steplr-200e.toml", "--set", "backend=go")
	if code != 1 || !strings.Contains(errOut, "env_cfg.num_devices = 8") {
		t.Errorf("eight devices on a CPU: exit %d: %s", code, errOut)
	}
}

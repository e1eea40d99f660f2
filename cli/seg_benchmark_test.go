package cli

import (
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/goselfsup/goselfsup/internal/segfixture"
)

// segBenchmarkConfig writes a fine-tuning benchmark config for MMSegBenchmark: an FCN on a
// tiny dilated ResNet, on the segmentation fixture at root.
func segBenchmarkConfig(t *testing.T, root string, iters, valEvery, ckptEvery int) string {
	t.Helper()
	dataset := func(pipeline string) string {
		return fmt.Sprintf(`{ type = "BaseSegDataset", data_root = %q, img_dir = "img", ann_dir = "ann", metainfo = { classes = ["dark", "bright", "red"] }, pipeline = %s }`, root, pipeline)
	}
	cfg := fmt.Sprintf(`backend = "go"
benchmark = { type = "MMSegBenchmark" }
randomness = { seed = 3 }
val_evaluator = { type = "IoUMetric", iou_metrics = ["mIoU"] }
optim_wrapper = { optimizer = { type = "SGD", lr = 0.05, momentum = 0.9, weight_decay = 5e-4 } }
param_scheduler = [{ type = "PolyLR", eta_min = 1e-4, power = 0.9, begin = 0, end = %[1]d, by_epoch = false }]
train_cfg = { type = "IterBasedTrainLoop", max_iters = %[1]d, val_interval = %[2]d }
default_hooks = { logger = { type = "LoggerHook", interval = 1 }, checkpoint = { type = "CheckpointHook", by_epoch = false, interval = %[3]d, max_keep_ckpts = 2 } }

[model]
type = "EncoderDecoder"
data_preprocessor = { type = "SegDataPreProcessor", mean = [123.675, 116.28, 103.53], std = [58.395, 57.12, 57.375], bgr_to_rgb = true }
backbone = { type = "ResNet", depth = 18, stage_blocks = [1, 1, 1, 1], stem_channels = 4, base_channels = 4, strides = [1, 2, 1, 1], dilations = [1, 1, 2, 4], contract_dilation = true, out_indices = [1, 2, 3, 4], norm_cfg = { type = "SyncBN" } }
decode_head = { type = "FCNHead", in_channels = 32, in_index = 3, channels = 8, num_convs = 1, concat_input = true, dropout_ratio = 0.1, num_classes = 3, norm_cfg = { type = "SyncBN" }, loss_decode = { type = "CrossEntropyLoss", loss_weight = 1.0 } }
auxiliary_head = { type = "FCNHead", in_channels = 16, in_index = 2, channels = 4, num_convs = 1, concat_input = false, dropout_ratio = 0.1, num_classes = 3, norm_cfg = { type = "SyncBN" }, loss_decode = { type = "CrossEntropyLoss", loss_weight = 0.4 } }

[train_dataloader]
batch_size = 4
num_workers = 2
sampler = { type = "InfiniteSampler", shuffle = true }
dataset = %[4]s

[val_dataloader]
batch_size = 1
num_workers = 2
dataset = %[5]s
`, iters, valEvery, ckptEvery,
		dataset(`[{ type = "LoadImageFromFile" }, { type = "LoadAnnotations" }, { type = "RandomResize", scale = [24, 24], ratio_range = [0.8, 1.2], keep_ratio = true }, { type = "RandomCrop", crop_size = [16, 16], cat_max_ratio = 0.75 }, { type = "RandomFlip", prob = 0.5 }, { type = "PhotoMetricDistortion" }, { type = "Pad", size = [20, 20], pad_val = { img = 0, seg = 255 } }, { type = "PackSegInputs" }]`),
		dataset(`[{ type = "LoadImageFromFile" }, { type = "Resize", scale = [16, 16], keep_ratio = true }, { type = "LoadAnnotations" }, { type = "PackSegInputs" }]`))
	path := filepath.Join(t.TempDir(), "fcn_tiny_fixture.toml")
	if err := os.WriteFile(path, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// evaluate runs tools/evaluate.
func evaluate(args ...string) (int, string, string) {
	var out, errOut strings.Builder
	code := Main(append([]string{"evaluate"}, args...), &out, &errOut)
	return code, out.String(), errOut.String()
}

// tools/evaluate runs a config with benchmark = MMSegBenchmark in the segmentation plugin's
// process, built from this checkout on first use: the plugin fine-tunes the model from the
// checkpoint's backbone, its log lines and metrics reach the tool, and metrics.json,
// checkpoints and overlays land in the work_dir.
func TestSegBenchmarkRunsInThePlugin(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the plugin")
	}
	root := segfixture.Write(t, 8, 28, 24)
	cfg := segBenchmarkConfig(t, root, 4, 4, 2)
	wd := filepath.Join(t.TempDir(), "wd")
	code, out, errOut := evaluate(cfg, "--work-dir", wd)
	if code != 0 {
		t.Fatalf("exit %d:\n%s\n%s", code, out, errOut)
	}
	m := readMetrics(t, wd)
	if m["plugin"] != "seg" || m["benchmark"] != "MMSegBenchmark" {
		t.Errorf("metrics.json: plugin %v, benchmark %v", m["plugin"], m["benchmark"])
	}
	for _, k := range []string{"mIoU", "aAcc", "mAcc", "IoU.dark", "Acc.red"} {
		if v, ok := m[k].(float64); !ok || v < 0 || v > 100 {
			t.Errorf("metrics.json: %s = %v", k, m[k])
		}
	}
	for _, want := range []string{"mIoU", "artefact overlay"} {
		if !strings.Contains(out, want) {
			t.Errorf("stdout lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "IoU.dark") {
		t.Errorf("stdout lists per-class values:\n%s", out)
	}
	for _, want := range []string{"running MMSegBenchmark of plugin seg", "plugin.seg", "Iter(train) [4/4]", "validation at iteration 4 of 4"} {
		if !strings.Contains(errOut, want) {
			t.Errorf("stderr lacks %q:\n%s", want, errOut)
		}
	}
	for _, p := range []string{"iter_4.ckpt", "fcn_tiny_fixture.toml"} {
		if _, err := os.Stat(filepath.Join(wd, p)); err != nil {
			t.Error(err)
		}
	}
	if pngs, _ := filepath.Glob(filepath.Join(wd, "*", "vis_data", "seg", "iter_4", "*.png")); len(pngs) != 4 {
		t.Errorf("%d overlays", len(pngs))
	}
}

// Killed mid-run, the plugin is named in the error; the same command with --resume goes on
// from its last checkpoint and finishes.
func TestSegBenchmarkResumesAfterThePluginIsKilled(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the plugin")
	}
	if runtime.GOOS != "linux" {
		t.Skip("finds the plugin process in /proc")
	}
	root := segfixture.Write(t, 8, 28, 24)
	cfg := segBenchmarkConfig(t, root, 100000, 100000, 4) // killed long before its end
	wd := filepath.Join(t.TempDir(), "wd")
	type result struct {
		code        int
		out, errOut string
	}
	done := make(chan result, 1)
	go func() {
		code, out, errOut := evaluate(cfg, "--work-dir", wd)
		done <- result{code, out, errOut}
	}()
	deadline := time.Now().Add(5 * time.Minute)
	for {
		if _, err := os.Stat(filepath.Join(wd, "last_checkpoint")); err == nil { // max_keep_ckpts removes the old ones
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("no checkpoint after 5 minutes")
		}
		select {
		case r := <-done:
			t.Fatalf("the run ended before it was killed: exit %d\n%s", r.code, r.errOut)
		case <-time.After(100 * time.Millisecond):
		}
	}
	pid := childNamed(t, "goselfsup-plugin-seg")
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	r := <-done
	t.Logf("after the kill: %s", r.errOut[strings.LastIndex(r.errOut, "error:"):])
	if r.code != 1 {
		t.Fatalf("exit %d after the kill:\n%s", r.code, r.errOut)
	}
	for _, want := range []string{"plugin seg", "goselfsup-plugin-seg", fmt.Sprintf("pid %d", pid), "died during MMSegBenchmark", "killed"} {
		if !strings.Contains(r.errOut, want) {
			t.Errorf("the error lacks %q:\n%s", want, tail(r.errOut, 3000))
		}
	}

	// The rerun resumes from the last checkpoint; it is cut short to 4 iterations more.
	last, err := os.ReadFile(filepath.Join(wd, "last_checkpoint"))
	if err != nil {
		t.Fatal(err)
	}
	var n int
	if _, err := fmt.Sscanf(filepath.Base(strings.TrimSpace(string(last))), "iter_%d.ckpt", &n); err != nil {
		t.Fatalf("last_checkpoint %q: %v", last, err)
	}
	end := strconv.Itoa(n + 4)
	code, out, errOut := evaluate(cfg, "--work-dir", wd, "--resume", "--set", "train_cfg.max_iters="+end, "--set", "train_cfg.val_interval="+end)
	if code != 0 {
		t.Fatalf("resumed run: exit %d:\n%s\n%s", code, out, errOut)
	}
	for _, want := range []string{"resumed", fmt.Sprintf("Iter(train) [%d/%s]", n+1, end), fmt.Sprintf("Iter(train) [%s/%s]", end, end)} {
		if !strings.Contains(errOut, want) {
			t.Errorf("the rerun did not resume from iteration %d (%q):\n%s", n, want, tail(errOut, 3000))
		}
	}
	if strings.Contains(errOut, "Iter(train) [1/"+end+"]") {
		t.Errorf("the rerun started from the beginning:\n%s", tail(errOut, 3000))
	}
	if m := readMetrics(t, wd); m["mIoU"] == nil {
		t.Errorf("metrics.json: %v", m)
	}
}

// childNamed returns the pid of this process's child whose command is name.
func childNamed(t *testing.T, name string) int {
	t.Helper()
	entries, err := os.ReadDir("/proc")
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		stat, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue
		}
		// pid (comm) state ppid ...: comm may hold spaces and parentheses.
		s := string(stat)
		fields := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
		if len(fields) < 2 || fields[1] != strconv.Itoa(os.Getpid()) {
			continue
		}
		if exe, err := os.Readlink(filepath.Join("/proc", e.Name(), "exe")); err == nil && filepath.Base(exe) == name {
			return pid
		}
	}
	t.Fatalf("no child process %s", name)
	return 0
}

func tail(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return "..." + s[len(s)-n:]
}

package engine_test

import (
	"context"
	"encoding/json"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"runtime"
	"strings"
	"testing"

	"github.com/goselfsup/goselfsup/engine"
)

// Hooks run in priority order at every point, equal priorities in the order they were
// added; a config's priority key places its hook.
func TestHookPriorities(t *testing.T) {
	var order []string
	mark := func(name string, p engine.Priority) *engine.Hook {
		return &engine.Hook{Name: name, Priority: p, BeforeTrain: func(*engine.Runner) error {
			order = append(order, name)
			return nil
		}}
	}
	opts := engine.Options{Hooks: []*engine.Hook{
		mark("low", engine.PriorityLow), mark("normal-1", engine.PriorityNormal),
		mark("highest", engine.PriorityHighest), mark("normal-2", engine.PriorityNormal),
	}}
	_, err := train(t, t.TempDir(), opts, context.Background(), "train_cfg.max_epochs=1", "param_scheduler=[]",
		`custom_hooks=[{type = "KNNHook", num_knn = [1], priority = "VERY_LOW"}]`)
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(order, " "); got != "highest normal-1 normal-2 low" {
		t.Errorf("order %q", got)
	}
	err = startRun(t, t.TempDir(), "train_cfg.max_epochs=1", "param_scheduler=[]",
		`custom_hooks=[{type = "KNNHook", priority = "SOMETIMES"}]`)
	if err == nil || !strings.Contains(err.Error(), `custom_hooks.0.priority`) || !strings.Contains(err.Error(), "VERY_LOW") {
		t.Errorf("a bad priority: %v", err)
	}
}

// A hook point is a field, so a misspelt one does not compile, where a method next to an
// embedded no-op base would silently never be called.
func TestMisspeltHookPointDoesNotCompile(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the compiler")
	}
	goBin := filepath.Join(runtime.GOROOT(), "bin", "go")
	if _, err := os.Stat(goBin); err != nil {
		t.Skip("no go command")
	}
	src := func(point string) string {
		return "package engine\n\nvar _ = &Hook{Name: \"x\", " + point + ": func(*Runner, IterInfo) error { return nil }}\n"
	}
	check := func(point string) (string, error) {
		dir := t.TempDir()
		file := filepath.Join(dir, "x.go")
		if err := os.WriteFile(file, []byte(src(point)), 0o644); err != nil {
			t.Fatal(err)
		}
		pkg, err := filepath.Abs(".")
		if err != nil {
			t.Fatal(err)
		}
		overlay := filepath.Join(dir, "overlay.json")
		json := `{"Replace": {"` + filepath.Join(pkg, "zz_misspelt_hook.go") + `": "` + file + `"}}`
		if err := os.WriteFile(overlay, []byte(json), 0o644); err != nil {
			t.Fatal(err)
		}
		out, err := exec.Command(goBin, "build", "-overlay", overlay, ".").CombinedOutput()
		return string(out), err
	}
	if out, err := check("AfterTrainIter"); err != nil {
		t.Fatalf("the correctly spelt point does not compile: %v\n%s", err, out)
	}
	out, err := check("AfterTrainIteration")
	if err == nil || !strings.Contains(out, "unknown field AfterTrainIteration") {
		t.Errorf("a misspelt point compiled (%v):\n%s", err, out)
	}
}

// A run that fails while it is being built writes nothing: no work_dir, no log.
func TestFailedStartWritesNothing(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "run")
	err := startRun(t, dir, "train_cfg.max_epochs=1", "param_scheduler=[{type = \"MultiStepLR\", milestones = [5]}]")
	if err == nil || !strings.Contains(err.Error(), "milestones [5]: 5 is beyond the run's 1 epochs") {
		t.Fatalf("err = %v", err)
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Errorf("the failed run left %s (%v)", dir, err)
	}
}

// IterBasedTrainLoop counts iterations across epochs; checkpoints by iteration; logs
// "Iter(train)"; a run resumed from an iteration checkpoint in the middle of an epoch ends
// with the same weights as one that was not stopped.
func TestIterBasedLoop(t *testing.T) {
	sets := []string{`train_cfg={_delete_ = true, type = "IterBasedTrainLoop", max_iters = 9, val_interval = 100}`,
		`param_scheduler=[{type = "MultiStepLR", by_epoch = false, milestones = [4]}]`,
		`default_hooks.checkpoint={_delete_ = true, type = "CheckpointHook", by_epoch = false, interval = 4}`,
		"default_hooks.logger.interval=3", "custom_hooks=[]"}
	whole := t.TempDir()
	r, err := train(t, whole, engine.Options{}, context.Background(), sets...)
	if err != nil {
		t.Fatal(err)
	}
	if r.Iter != 9 || r.Epoch != 1 || r.MaxIters != 9 {
		t.Errorf("iter %d, epoch %d, max_iters %d; want 9, 1 (6 iterations an epoch), 9", r.Iter, r.Epoch, r.MaxIters)
	}
	for _, f := range []string{"iter_4.ckpt", "iter_8.ckpt", "iter_9.ckpt"} {
		if _, err := os.Stat(filepath.Join(whole, f)); err != nil {
			t.Errorf("no %s", f)
		}
	}
	log, _ := os.ReadFile(filepath.Join(r.RunDir, "log.jsonl"))
	if !strings.Contains(string(log), `"msg":"Iter(train) [9/9]"`) {
		t.Errorf("the log lacks Iter(train) [9/9]:\n%s", log)
	}
	resumed := t.TempDir()
	if _, err := train(t, resumed, engine.Options{Resume: filepath.Join(whole, "iter_8.ckpt")}, context.Background(), sets...); err != nil {
		t.Fatal(err)
	}
	a, err := engine.LoadCheckpoint(filepath.Join(whole, "iter_9.ckpt"))
	if err != nil {
		t.Fatal(err)
	}
	b, err := engine.LoadCheckpoint(filepath.Join(resumed, "iter_9.ckpt"))
	if err != nil {
		t.Fatal(err)
	}
	for name, ta := range a.Tensors {
		if tb, ok := b.Tensors[name]; !ok || !reflect.DeepEqual(ta.Value(), tb.Value()) {
			t.Errorf("%s differs after resuming at iteration 8", name)
		}
	}
}

// startRun builds a runner of the tiny config and returns NewRunner's error.
func startRun(t *testing.T, dir string, sets ...string) error {
	t.Helper()
	tree, cfg := tinyConfig(t, sets...)
	r, err := engine.NewRunner(tree, cfg, engine.Options{WorkDir: dir, Console: &strings.Builder{}})
	if err == nil {
		r.Close()
	}
	return err
}

// LoggerHook logs loss as the mean over log_processor.window_size iterations, and
// custom_cfg adds statistics over other windows: here the global maximum of the loss and
// the epoch's minimum under their own names.
func TestLoggerWindowsAndCustomCfg(t *testing.T) {
	var losses []float64
	record := recordLosses(&losses)
	r, err := train(t, t.TempDir(), engine.Options{Hooks: []*engine.Hook{record}}, context.Background(),
		"custom_hooks=[]", "train_cfg.max_epochs=2", "param_scheduler=[]", "default_hooks.logger.interval=3",
		"log_processor.window_size=2",
		`log_processor.custom_cfg=[{data_src = "loss", method = "max", window_size = "global", log_name = "loss_max"},
		                           {data_src = "loss", method = "min", window_size = "epoch", log_name = "loss_epoch_min"}]`)
	if err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(filepath.Join(r.RunDir, "vis_data", "scalars.json"))
	if err != nil {
		t.Fatal(err)
	}
	var lines []map[string]float64
	for _, l := range strings.Split(strings.TrimSpace(string(data)), "\n") {
		var m map[string]float64
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			t.Fatal(err)
		}
		lines = append(lines, m)
	}
	// Six iterations an epoch, a line every three: after iterations 3, 6, 9, 12.
	if len(lines) != 4 || len(losses) != 12 {
		t.Fatalf("%d scalar lines for %d iterations:\n%s", len(lines), len(losses), data)
	}
	for i, m := range lines {
		n := 3 * (i + 1) // iterations done
		mean := (losses[n-2] + losses[n-1]) / 2
		gmax, emin := losses[0], losses[(n-1)/6*6]
		for _, l := range losses[:n] {
			gmax = max(gmax, l)
		}
		for _, l := range losses[(n-1)/6*6 : n] {
			emin = min(emin, l)
		}
		for k, want := range map[string]float64{"loss": mean, "loss_max": gmax, "loss_epoch_min": emin, "step": float64(n)} {
			if got := m[k]; math.Abs(got-want) > 1e-12*math.Max(1, math.Abs(want)) {
				t.Errorf("line %d: %s = %v, want %v", i, k, got, want)
			}
		}
	}
}

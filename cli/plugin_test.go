package cli

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// TestPluginFromAConfig builds the example plugin, installs it in a folder of
// $GOSELFSUP_PLUGIN_PATH, and runs it from a benchmark config through tools/evaluate.
func TestPluginFromAConfig(t *testing.T) {
	plugins := t.TempDir()
	build := exec.Command("go", "build", "-o", filepath.Join(plugins, "goselfsup-plugin-logreg"), ".")
	build.Dir = filepath.Join("..", "examples", "plugins", "logreg")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("building the example plugin: %v\n%s", err, out)
	}
	t.Setenv("GOSELFSUP_PLUGIN_PATH", plugins)
	t.Setenv("XDG_CACHE_HOME", t.TempDir())

	code, out, errOut := run(Plugin, "list")
	if code != 0 || !strings.Contains(out, "evaluators.LogisticRegressionProbe") {
		t.Fatalf("plugin list: exit %d\n%s\n%s", code, out, errOut)
	}
	// The config tools list and describe the plugin's components with the built-in ones.
	if code, out, errOut = run(PrintConfig, "--components"); code != 0 || !strings.Contains(out, "backbones:\n  ResNet ") ||
		!regexp.MustCompile(`\n  LogisticRegressionProbe +.*\(plugin logreg`).MatchString(out) {
		t.Errorf("print_config --components: exit %d\n%s\n%s", code, out, errOut)
	}
	if code, out, errOut = run(PrintConfig, "--describe", "LogisticRegressionProbe"); code != 0 ||
		!strings.HasPrefix(out, "evaluators.LogisticRegressionProbe: ") || !strings.Contains(out, "\nprovided by plugin logreg (") {
		t.Errorf("print_config --describe LogisticRegressionProbe: exit %d\n%s\n%s", code, out, errOut)
	}
	if code, out, errOut = run(Plugin, "verify", "--write", "logreg"); code != 0 {
		t.Fatalf("plugin verify --write: exit %d\n%s\n%s", code, out, errOut)
	}
	if code, out, _ = run(Plugin, "verify"); code != 0 || !strings.Contains(out, "logreg: ok") {
		t.Errorf("plugin verify: exit %d\n%s", code, out)
	}
	if code, out, errOut = run(Plugin, "describe", "logreg", "--start"); code != 0 || !strings.Contains(out, "Info answered") {
		t.Errorf("plugin describe --start: exit %d\n%s\n%s", code, out, errOut)
	}

	ckpt := trainDemo(t)
	dir := t.TempDir()
	cfg := writeFile(t, dir, "logreg.toml", demoBenchmark+`
[val_evaluator]
type = "LogisticRegressionProbe"
feature = "backbone"
epochs = 30
`)
	work := filepath.Join(dir, "work")
	code, out, errOut = run(Evaluate, cfg, ckpt, "--work-dir", work)
	if code != 0 {
		t.Fatalf("evaluate: exit %d\n%s\n%s", code, out, errOut)
	}
	m := readMetrics(t, work)
	if v, ok := m["logreg_top1"].(float64); !ok || v < 0 || v > 100 || m["plugin"] != "logreg" {
		t.Errorf("metrics %v", m)
	}
	if !strings.Contains(errOut, "plugin.logreg") || !strings.Contains(errOut, "done") {
		t.Errorf("the plugin's log lines are not in the host's:\n%s", errOut)
	}
	for _, f := range []string{"features/train_backbone.npy", "features/val_labels.npy", "plugins/logreg.stderr.log"} {
		if _, err := os.Stat(filepath.Join(work, f)); err != nil {
			t.Error(err)
		}
	}
	// A key the plugin does not document is a config error, before anything runs.
	bad := writeFile(t, dir, "bad.toml", demoBenchmark+"[val_evaluator]\ntype = \"LogisticRegressionProbe\"\nepoch = 3\n")
	if code, _, errOut = run(Evaluate, bad, ckpt, "--work-dir", filepath.Join(dir, "bad")); code != 1 ||
		!strings.Contains(errOut, "val_evaluator.epoch: unknown key for LogisticRegressionProbe (plugin logreg)") {
		t.Errorf("an unknown plugin key: exit %d\n%s", code, errOut)
	}
}

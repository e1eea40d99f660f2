package cli

import (
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// examplePlugin is the example plugin's folder, found before any test changes the working
// directory.
var examplePlugin, _ = filepath.Abs(filepath.Join("..", "examples", "plugins", "logreg"))

// goCache is Go's build cache, found before a test changes $XDG_CACHE_HOME.
var goCache = func() string {
	if c := os.Getenv("GOCACHE"); c != "" {
		return c
	}
	c, _ := os.UserCacheDir()
	return filepath.Join(c, "go-build")
}()

// buildLogreg builds the example plugin into dir and returns its path.
func buildLogreg(t *testing.T, dir string) string {
	t.Helper()
	path := filepath.Join(dir, "goselfsup-plugin-logreg")
	build := exec.Command("go", "build", "-o", path, ".")
	build.Dir = examplePlugin
	build.Env = append(os.Environ(), "GOCACHE="+goCache)
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("building the example plugin: %v\n%s", err, out)
	}
	return path
}

// pluginEnv makes the plugin folders of a test its own: $GOSELFSUP_PLUGIN_PATH is dir, and
// the user's folders (plugins, manifest cache) are fresh.
func pluginEnv(t *testing.T, dir string) {
	t.Setenv("GOSELFSUP_PLUGIN_PATH", dir)
	t.Setenv("XDG_CONFIG_HOME", t.TempDir())
	t.Setenv("XDG_CACHE_HOME", t.TempDir())
}

// TestPluginFromAConfig builds the example plugin, installs it in a folder of
// $GOSELFSUP_PLUGIN_PATH, approves it, and runs it from a benchmark config through
// tools/evaluate. Everything runs from a folder outside the repository.
func TestPluginFromAConfig(t *testing.T) {
	plugins := t.TempDir()
	buildLogreg(t, plugins)
	pluginEnv(t, plugins)
	t.Chdir(t.TempDir())

	// Not approved yet: found, not run, and the command that approves it is given.
	code, out, errOut := run(Plugin, "list")
	if code != 0 || !strings.Contains(out, "(not loaded)") ||
		!strings.Contains(out, "not loaded: logreg: no checksum recorded: goselfsup-plugin-logreg has no goselfsup-plugin-logreg_SHA256SUM; approve it with `tools/plugin verify --write logreg` once you trust it") {
		t.Fatalf("plugin list before approval: exit %d\n%s\n%s", code, out, errOut)
	}
	if code, _, errOut = run(Plugin, "describe", "logreg"); code != 1 || !strings.Contains(errOut, "did not load, and was not run: no checksum recorded") {
		t.Errorf("plugin describe before approval: exit %d\n%s", code, errOut)
	}
	if code, out, _ = run(Plugin, "verify"); code != 1 || !strings.Contains(out, "logreg: plugin logreg ("+plugins) {
		t.Errorf("plugin verify before approval: exit %d\n%s", code, out)
	}
	if code, _, errOut = run(Plugin, "verify", "--write"); code != 2 || !strings.Contains(errOut, "give their names") {
		t.Errorf("plugin verify --write without names: exit %d\n%s", code, errOut)
	}
	if code, out, errOut = run(Plugin, "verify", "--write", "logreg"); code != 0 || !strings.Contains(out, "logreg: approved") {
		t.Fatalf("plugin verify --write: exit %d\n%s\n%s", code, out, errOut)
	}
	if code, out, _ = run(Plugin, "verify"); code != 0 || !strings.Contains(out, "logreg: ok") {
		t.Errorf("plugin verify: exit %d\n%s", code, out)
	}
	// The config tools list and describe the plugin's components with the built-in ones.
	if code, out, errOut = run(PrintConfig, "--components"); code != 0 || !strings.Contains(out, "backbones:\n  ResNet ") ||
		!regexp.MustCompile(`\n  LogisticRegressionProbe +.*\(plugin logreg`).MatchString(out) {
		t.Errorf("print_config --components: exit %d\n%s\n%s", code, out, errOut)
	}
	if code, out, errOut = run(PrintConfig, "--describe", "LogisticRegressionProbe"); code != 0 ||
		!strings.HasPrefix(out, "evaluators.LogisticRegressionProbe: ") || !strings.Contains(out, "\nprovided by plugin logreg (") ||
		!regexp.MustCompile(`\n  epochs +int +100 +passes of mini-batch gradient descent\n`).MatchString(out) {
		t.Errorf("print_config --describe LogisticRegressionProbe: exit %d\n%s\n%s", code, out, errOut)
	}
	if code, out, errOut = run(Plugin, "list"); code != 0 || !strings.Contains(out, "verified  evaluators.LogisticRegressionProbe") {
		t.Errorf("plugin list: exit %d\n%s\n%s", code, out, errOut)
	}
	if code, out, errOut = run(Plugin, "describe", "logreg", "--start"); code != 0 || !strings.Contains(out, "Info answered") ||
		!strings.Contains(out, `"name": "epochs"`) {
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

// markerScript is a plugin program that appends its arguments to marker whenever it runs,
// then runs then (shell commands).
func markerScript(t *testing.T, path, marker, then string) {
	t.Helper()
	script := "#!/bin/sh\necho \"$@\" >> '" + marker + "'\n" + then + "\n"
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
}

const evilManifest = `echo '{"name": "evil", "version": "6.6.6", "protocol_version": 1, "components": [{"namespace": "evaluators", "type": "Evil"}]}'`

// toolRun is one run of a tool that loads configs or plugins.
type toolRun struct {
	name string
	tool func([]string, io.Writer, io.Writer) int
	args []string
}

// configTools are the tools that load cfg, with extra arguments.
func configTools(cfg, work string, extra ...string) []toolRun {
	return []toolRun{
		{"print_config", PrintConfig, append([]string{cfg}, extra...)},
		{"train", Train, append([]string{cfg, "--work-dir", work}, extra...)},
		{"evaluate", Evaluate, append([]string{cfg, "--work-dir", work}, extra...)},
		{"plugin list", Plugin, append([]string{"list"}, extra...)},
		{"plugin describe", Plugin, append([]string{"describe", "evil"}, extra...)},
		{"plugin verify", Plugin, append([]string{"verify"}, extra...)},
	}
}

func absent(t *testing.T, marker, after string) {
	t.Helper()
	if data, err := os.ReadFile(marker); err == nil {
		t.Errorf("%s ran the plugin (%q)", after, data)
		os.Remove(marker)
	}
}

// A plugin program that nobody approved, or that changed since it was approved, is run by
// no tool: not a script planted in ./plugins, nor one in $GOSELFSUP_PLUGIN_PATH without a
// checksum file, nor a real plugin rewritten after `verify --write`. The reasons reach the
// user, in the config's unknown-type error and in `plugin list`.
func TestPluginsNeverRunUnapproved(t *testing.T) {
	pathDir := t.TempDir()
	pluginEnv(t, pathDir)
	wd := t.TempDir()
	t.Chdir(wd)
	marker := filepath.Join(t.TempDir(), "ran")
	markerScript(t, filepath.Join(wd, "plugins", "goselfsup-plugin-evil"), marker, evilManifest)
	cfg := writeFile(t, wd, "evil.toml", demoBenchmark+"[val_evaluator]\ntype = \"Evil\"\n")
	work := filepath.Join(wd, "work")

	// ./plugins is not searched: the script is not even seen.
	for _, r := range configTools(cfg, work) {
		code, out, errOut := run(r.tool, r.args...)
		absent(t, marker, r.name)
		if strings.HasPrefix(r.name, "plugin") {
			if strings.Contains(out, "evil") && r.args[0] == "list" {
				t.Errorf("%s searched ./plugins:\n%s", r.name, out)
			}
			continue
		}
		if code != 1 || !strings.Contains(errOut, `val_evaluator.type: unknown evaluators type "Evil"`) || strings.Contains(errOut, "did not load") {
			t.Errorf("%s: exit %d\n%s", r.name, code, errOut)
		}
	}
	// Named with --plugin-dir, it is found, and not run: it has no checksum file.
	why := "plugin evil did not load (no checksum recorded: goselfsup-plugin-evil has no goselfsup-plugin-evil_SHA256SUM; " +
		"approve it with `tools/plugin verify --write --plugin-dir plugins evil` once you trust it)"
	for _, r := range configTools(cfg, work, "--plugin-dir", "plugins") {
		code, out, errOut := run(r.tool, r.args...)
		absent(t, marker, r.name+" --plugin-dir plugins")
		switch r.args[0] {
		case "list":
			if !strings.Contains(out, "evil    -        none      (not loaded)") || !strings.Contains(out, "not loaded: evil: no checksum recorded") {
				t.Errorf("%s --plugin-dir plugins:\n%s", r.name, out)
			}
		case "describe", "verify":
			if code != 1 || !strings.Contains(out+errOut, "no checksum recorded") {
				t.Errorf("%s --plugin-dir plugins: exit %d\n%s%s", r.name, code, out, errOut)
			}
		default:
			if code != 1 || !strings.Contains(errOut, `val_evaluator.type: unknown evaluators type "Evil"`) || !strings.Contains(errOut, why) {
				t.Errorf("%s --plugin-dir plugins: exit %d\n%s\nlacks %s", r.name, code, errOut, why)
			}
		}
	}

	// The same script in $GOSELFSUP_PLUGIN_PATH, without a checksum file.
	markerScript(t, filepath.Join(pathDir, "goselfsup-plugin-evil"), marker, evilManifest)
	why = "plugin evil did not load (no checksum recorded: goselfsup-plugin-evil has no goselfsup-plugin-evil_SHA256SUM; " +
		"approve it with `tools/plugin verify --write evil` once you trust it)"
	for _, r := range configTools(cfg, work) {
		code, out, errOut := run(r.tool, r.args...)
		absent(t, marker, r.name+" from $GOSELFSUP_PLUGIN_PATH")
		if !strings.HasPrefix(r.name, "plugin") && (code != 1 || !strings.Contains(errOut, why)) {
			t.Errorf("%s: exit %d\n%s\nlacks %s", r.name, code, errOut, why)
		}
		if r.args[0] == "list" && !strings.Contains(out, "not loaded: evil: no checksum recorded") {
			t.Errorf("%s:\n%s", r.name, out)
		}
	}
	os.Remove(filepath.Join(pathDir, "goselfsup-plugin-evil"))

	// A real plugin behind a wrapper that leaves the marker: approved, it runs (the marker
	// works); rewritten after approval, nothing runs it.
	real := buildLogreg(t, t.TempDir())
	wrapper := filepath.Join(pathDir, "goselfsup-plugin-logreg")
	markerScript(t, wrapper, marker, "exec '"+real+"' \"$@\"")
	if code, out, errOut := run(Plugin, "verify", "--write", "logreg"); code != 0 {
		t.Fatalf("verify --write: exit %d\n%s%s", code, out, errOut)
	}
	code, out, errOut := run(Plugin, "list")
	if code != 0 || !strings.Contains(out, "evaluators.LogisticRegressionProbe") {
		t.Fatalf("plugin list of the approved wrapper: exit %d\n%s%s", code, out, errOut)
	}
	if data, err := os.ReadFile(marker); err != nil || strings.TrimSpace(string(data)) != "describe" {
		t.Fatalf("the approved wrapper did not run describe, the marker does not work: %q %v", data, err)
	}
	os.Remove(marker)
	markerScript(t, wrapper, marker, "# rewritten\nexec '"+real+"' \"$@\"")
	logregCfg := writeFile(t, wd, "logreg.toml", demoBenchmark+"[val_evaluator]\ntype = \"LogisticRegressionProbe\"\n")
	runs := append(configTools(logregCfg, work),
		toolRun{"plugin describe --start", Plugin, []string{"describe", "logreg", "--start"}})
	for _, r := range runs {
		code, out, errOut := run(r.tool, r.args...)
		absent(t, marker, r.name+" of a changed plugin")
		switch r.args[0] {
		case "list":
			if !strings.Contains(out, "logreg  -        MISMATCH  (not loaded)") || !strings.Contains(out, "not loaded: logreg: checksum mismatch: ") {
				t.Errorf("%s of a changed plugin:\n%s", r.name, out)
			}
		case "describe", "verify":
			if r.name == "plugin describe" { // of evil, which is gone
				continue
			}
			if code != 1 || !strings.Contains(out+errOut, "checksum mismatch") {
				t.Errorf("%s of a changed plugin: exit %d\n%s%s", r.name, code, out, errOut)
			}
		default:
			if code != 1 || !strings.Contains(errOut, `unknown evaluators type "LogisticRegressionProbe"`) || !strings.Contains(errOut, "plugin logreg did not load (checksum mismatch: ") ||
				!strings.Contains(errOut, "approve it as it is now with `tools/plugin verify --write logreg`") {
				t.Errorf("%s of a changed plugin: exit %d\n%s", r.name, code, errOut)
			}
		}
	}
}

// An approved plugin whose describe fails: its error reaches the user.
func TestBrokenPluginIsReported(t *testing.T) {
	dir := t.TempDir()
	pluginEnv(t, dir)
	t.Chdir(t.TempDir())
	marker := filepath.Join(t.TempDir(), "ran")
	markerScript(t, filepath.Join(dir, "goselfsup-plugin-evil"), marker, "echo 'cannot open libtorch.so' >&2\nexit 1")
	if code, out, errOut := run(Plugin, "verify", "--write", "evil"); code != 0 {
		t.Fatalf("verify --write: exit %d\n%s%s", code, out, errOut)
	}
	cfg := writeFile(t, dir, "evil.toml", demoBenchmark+"[val_evaluator]\ntype = \"Evil\"\n")
	why := "plugin evil did not load (`describe` failed: exit status 1: cannot open libtorch.so)"
	if code, _, errOut := run(PrintConfig, cfg); code != 1 || !strings.Contains(errOut, `val_evaluator.type: unknown evaluators type "Evil"`) || !strings.Contains(errOut, why) {
		t.Errorf("print_config: exit %d\n%s\nlacks %s", code, errOut, why)
	}
	if code, out, _ := run(Plugin, "list"); code != 0 || !strings.Contains(out, "not loaded: evil: `describe` failed: exit status 1: cannot open libtorch.so") {
		t.Errorf("plugin list: exit %d\n%s", code, out)
	}
}

package host

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/goselfsup/goselfsup/internal/npy"
	"github.com/goselfsup/goselfsup/plugins/pb"
	"github.com/goselfsup/goselfsup/registry"
)

// pluginDir holds the test plugins, built and approved (their checksum files written) once
// by TestMain: goselfsup-plugin-misbehave (testdata/misbehave) and goselfsup-plugin-logreg
// (the example in examples/plugins).
var pluginDir string

func TestMain(m *testing.M) {
	if os.Getenv("GOSELFSUP_TEST_HOST") != "" {
		hostHelper() // a host process for TestPluginExitsWithItsHost
		return
	}
	dir, err := os.MkdirTemp("", "plugins")
	if err != nil {
		panic(err)
	}
	pluginDir = dir
	code := func() int {
		defer os.RemoveAll(dir)
		if err := build(dir); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		return m.Run()
	}()
	os.Exit(code)
}

func build(dir string) error {
	root, err := filepath.Abs("../..")
	if err != nil {
		return err
	}
	for _, b := range []struct{ name, pkgDir, pkg string }{
		{"misbehave", root, "./plugins/host/testdata/misbehave"},
		{"logreg", filepath.Join(root, "examples", "plugins", "logreg"), "."},
	} {
		cmd := exec.Command("go", "build", "-o", filepath.Join(dir, "goselfsup-plugin-"+b.name), b.pkg)
		cmd.Dir = b.pkgDir
		if out, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("building the %s plugin: %v\n%s", b.name, err, out)
		}
		if err := approve(filepath.Join(dir, "goselfsup-plugin-"+b.name)); err != nil {
			return err
		}
	}
	return nil
}

// approve writes a binary's checksum file, as `tools/plugin verify --write` does.
func approve(path string) error {
	sum, err := SHA256(path)
	if err != nil {
		return err
	}
	return os.WriteFile(path+ChecksumSuffix, []byte(sum+"  "+filepath.Base(path)+"\n"), 0o644)
}

// copyPlugin copies a test plugin, and its checksum file, into a fresh folder, so a test
// may change its files.
func copyPlugin(t *testing.T, name string) string {
	t.Helper()
	dir := t.TempDir()
	for _, f := range []string{"goselfsup-plugin-" + name, "goselfsup-plugin-" + name + ChecksumSuffix} {
		data, err := os.ReadFile(filepath.Join(pluginDir, f))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, f), data, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func newHost(t *testing.T, opts Options) *Host {
	t.Helper()
	if opts.Dirs == nil {
		opts.Dirs = []string{pluginDir}
	}
	if opts.CacheDir == "" {
		opts.CacheDir = t.TempDir()
	}
	h := New(opts)
	for _, p := range h.Problems {
		t.Errorf("discovery: %v", p)
	}
	t.Cleanup(h.Close)
	return h
}

func binary(t *testing.T, h *Host, name string) *Binary {
	t.Helper()
	b, ok := h.Binary(name)
	if !ok {
		if b, ok := h.Found(name); ok {
			t.Fatalf("plugin %s did not load: %v", name, b.Err)
		}
		t.Fatalf("plugin %s not found among %v", name, h.Binaries())
	}
	return b
}

// notLoaded returns the plugin of a name that was found and did not load.
func notLoaded(t *testing.T, h *Host, name string) *Binary {
	t.Helper()
	b, ok := h.Found(name)
	if !ok {
		t.Fatalf("plugin %s not found", name)
	}
	if b.Err == nil {
		t.Fatalf("plugin %s loaded", name)
	}
	return b
}

// alive reports whether a process exists (and is not a zombie).
func alive(pid int) bool {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return syscall.Kill(pid, 0) == nil
	}
	f := strings.Fields(string(data))
	return len(f) > 2 && f[2] != "Z"
}

func waitGone(t *testing.T, pid int, within time.Duration) {
	t.Helper()
	deadline := time.Now().Add(within)
	for alive(pid) {
		if time.Now().After(deadline) {
			t.Fatalf("process %d still runs after %s", pid, within)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func TestDiscoveryAndManifests(t *testing.T) {
	shadow := copyPlugin(t, "logreg")
	empty := t.TempDir()
	cache := t.TempDir()
	h := newHost(t, Options{Dirs: []string{pluginDir, shadow, filepath.Join(empty, "absent")}, CacheDir: cache})
	if len(h.Binaries()) != 2 {
		t.Fatalf("found %v", h.Binaries())
	}
	b := binary(t, h, "logreg")
	if b.Path != filepath.Join(pluginDir, "goselfsup-plugin-logreg") || len(b.Shadowed) != 1 {
		t.Errorf("logreg at %s shadowing %v: the first folder wins", b.Path, b.Shadowed)
	}
	c := b.Manifest.Components[0]
	if b.Manifest.Name != "logreg" || b.Manifest.ProtocolVersion != 1 || c.Type != "LogisticRegressionProbe" || len(c.Keys) != 6 {
		t.Errorf("manifest %v", b.Manifest)
	}
	// The manifests are cached, and a second discovery reads them instead of running the
	// binaries: a cached manifest, edited, is what it finds.
	entries, _ := os.ReadDir(cache)
	if len(entries) != 2 {
		t.Fatalf("%d cached manifests, want 2", len(entries))
	}
	for _, e := range entries {
		p := filepath.Join(cache, e.Name())
		data, _ := os.ReadFile(p)
		os.WriteFile(p, []byte(strings.Replace(string(data), `"1.0.0"`, `"1.0.0-cached"`, 1)), 0o644)
	}
	h = newHost(t, Options{Dirs: []string{pluginDir}, CacheDir: cache})
	if v := binary(t, h, "logreg").Manifest.Version; v != "1.0.0-cached" {
		t.Errorf("second discovery: version %q, want the cached manifest's", v)
	}
	// The environment variable's folders, then the user's, are searched; ./plugins is not.
	t.Setenv(PathEnv, "/a"+string(os.PathListSeparator)+"/b")
	dirs := DefaultDirs()
	if len(dirs) != 3 || dirs[0] != "/a" || dirs[1] != "/b" || !strings.HasSuffix(dirs[2], filepath.Join("goselfsup", "plugins")) {
		t.Errorf("DefaultDirs %v", dirs)
	}
}

func TestRegistryIntegration(t *testing.T) {
	h := newHost(t, Options{})
	base := registry.New()
	base.Register(registry.Component{Namespace: "evaluators", Type: "Sleeper", New: func() any { return &struct{}{} }})
	reg, err := h.Extend(base)
	if err == nil || !strings.Contains(err.Error(), "Sleeper") {
		t.Errorf("a plugin component shadowing a built-in one: %v", err)
	}
	spec := registry.NewSpec("evaluators", "LogisticRegressionProbe", map[string]any{"epochs": int64(3), "lr": 0.1})
	cfg, err := reg.Decode(spec)
	if err != nil {
		t.Fatal(err)
	}
	if pc, ok := cfg.(*PluginComponent); !ok || pc.Binary.Name != "logreg" || pc.Table["epochs"] != int64(3) {
		t.Fatalf("decoded %#v", cfg)
	}
	for _, tc := range []struct {
		table map[string]any
		want  string
	}{
		{map[string]any{"epoch": int64(3)}, "epoch: unknown key for LogisticRegressionProbe (plugin logreg); its keys: batch_size, epochs"},
		{map[string]any{"epochs": "ten"}, "epochs: must be a int for LogisticRegressionProbe"},
	} {
		if _, err := reg.Decode(registry.NewSpec("evaluators", "LogisticRegressionProbe", tc.table)); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v: %v, want %q", tc.table, err, tc.want)
		}
	}
}

func TestEvaluateThroughAPlugin(t *testing.T) {
	core, logs := observer.New(zap.DebugLevel)
	h := newHost(t, Options{Log: zap.New(core)})
	reg, _ := h.Extend(registry.Default)
	// Features of two separable classes, as tools/extract writes them.
	dir := t.TempDir()
	writeFeatures(t, dir)
	cfg, err := reg.Decode(registry.NewSpec("evaluators", "LogisticRegressionProbe", map[string]any{"epochs": int64(20)}))
	if err != nil {
		t.Fatal(err)
	}
	var progress int
	work := t.TempDir()
	res, err := cfg.(*PluginComponent).Run(context.Background(), Request{WorkDir: work, Inputs: map[string]string{"features_dir": dir}},
		func(string, int64, int64) { progress++ })
	if err != nil {
		t.Fatal(err)
	}
	if res.Metrics["logreg_top1"] != 100 {
		t.Errorf("metrics %v, want logreg_top1 100 on separable classes", res.Metrics)
	}
	if progress != 20 {
		t.Errorf("%d progress events, want one per epoch", progress)
	}
	// The plugin's zap lines arrive with their level and fields.
	found := false
	for _, e := range logs.All() {
		if e.Message == "done" && e.Level == zap.InfoLevel && e.ContextMap()["accuracy"] == 100.0 {
			found = true
		}
	}
	if !found {
		t.Errorf("the plugin's log did not reach the host's: %v", logs.All())
	}
	if _, err := os.Stat(filepath.Join(work, "plugins", "logreg.stderr.log")); err != nil {
		t.Error(err)
	}
	h.mu.Lock()
	left := len(h.sessions)
	h.mu.Unlock()
	if left != 0 {
		t.Errorf("%d plugin processes left running", left)
	}
}

// writeFeatures writes 40 train and 20 val samples of two classes apart along dimension 0.
func writeFeatures(t *testing.T, dir string) {
	t.Helper()
	for split, n := range map[string]int{"train": 40, "val": 20} {
		set := make([]float32, 0, n*3)
		labels := make([]int64, n)
		for i := range n {
			y := i % 2
			labels[i] = int64(y)
			set = append(set, float32(2*y-1)+0.1*float32(i%5), float32(i%3), float32(i%7))
		}
		writeNPY(t, filepath.Join(dir, split+"_backbone.npy"), "<f4", []int{n, 3}, set)
		writeNPY(t, filepath.Join(dir, split+"_labels.npy"), "<i8", []int{n}, labels)
	}
}

func TestErrorsOfAComponent(t *testing.T) {
	h := newHost(t, Options{})
	s, err := h.Start(binary(t, h, "misbehave"), "")
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	err = s.Evaluate(context.Background(), &pb.EvaluateRequest{Component: "Failer"}, func(*pb.Event) {})
	if err == nil || err.Error() != "plugin misbehave: Failer: the data is bad" {
		t.Errorf("a failing component: %v", err)
	}
	err = s.Evaluate(context.Background(), &pb.EvaluateRequest{Component: "Nope"}, func(*pb.Event) {})
	if err == nil || !strings.Contains(err.Error(), `has no component "Nope"`) {
		t.Errorf("an unknown component: %v", err)
	}
	// Cancelling the call stops the component; the process keeps serving.
	ctx, cancel := context.WithCancel(context.Background())
	err = s.Evaluate(ctx, &pb.EvaluateRequest{Component: "Sleeper"}, func(e *pb.Event) {
		if _, ok := e.Kind.(*pb.Event_Progress); ok {
			cancel()
		}
	})
	if !errors.Is(err, context.Canceled) {
		t.Errorf("a cancelled run: %v", err)
	}
	if _, err := s.Info(context.Background()); err != nil {
		t.Errorf("after a cancelled run: %v", err)
	}
	pid := s.Pid
	s.Close()
	waitGone(t, pid, 5*time.Second)
}

func TestPluginKilledMidRun(t *testing.T) {
	h := newHost(t, Options{})
	s, err := h.Start(binary(t, h, "misbehave"), "")
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	err = s.Evaluate(context.Background(), &pb.EvaluateRequest{Component: "Sleeper"}, func(e *pb.Event) {
		if _, ok := e.Kind.(*pb.Event_Progress); ok {
			time.Sleep(100 * time.Millisecond) // let the log lines arrive
			syscall.Kill(s.Pid, syscall.SIGKILL)
		}
	})
	for _, want := range []string{"plugin misbehave", "died during Sleeper", "signal: killed", "INFO first line component=Sleeper", "WARN second line component=Sleeper n=2"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("error %v lacks %q", err, want)
		}
	}
	waitGone(t, s.Pid, 5*time.Second)
}

func TestChecksums(t *testing.T) {
	dir := copyPlugin(t, "misbehave")
	path := filepath.Join(dir, "goselfsup-plugin-misbehave")
	h := newHost(t, Options{Dirs: []string{dir}})
	b := binary(t, h, "misbehave")
	if err := b.Verify(); err != nil {
		t.Fatal(err)
	}
	s, err := h.Start(b, "")
	if err != nil {
		t.Fatalf("a matching checksum: %v", err)
	}
	s.Close()

	// The binary changes after it was loaded: go-plugin's check refuses to start it.
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, append(data, 0), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := b.Verify(); !errors.Is(err, ErrChecksum) {
		t.Errorf("Verify: %v", err)
	}
	if _, err := h.Start(b, ""); !errors.Is(err, ErrChecksum) || !strings.Contains(err.Error(), "refusing to run it") ||
		!strings.Contains(err.Error(), "tools/plugin verify --write --plugin-dir "+dir+" misbehave") {
		t.Errorf("a binary changed since it loaded: %v", err)
	}
	// A new host does not load it.
	h = newHost(t, Options{Dirs: []string{dir}})
	b = notLoaded(t, h, "misbehave")
	if !errors.Is(b.Err, ErrChecksum) || len(h.Binaries()) != 0 {
		t.Errorf("a mismatching checksum: loaded %v, %v", h.Binaries(), b.Err)
	}
	if _, err := h.Start(b, ""); err == nil || !strings.Contains(err.Error(), "did not load, and is not run") {
		t.Errorf("starting a plugin that did not load: %v", err)
	}
	// Nor one without a checksum file.
	os.Remove(path + ChecksumSuffix)
	h = newHost(t, Options{Dirs: []string{dir}})
	if b := notLoaded(t, h, "misbehave"); !errors.Is(b.Err, ErrUntrusted) {
		t.Errorf("no checksum file: %v", b.Err)
	}
	if _, err := h.Start(&Binary{Name: "misbehave", Path: path}, ""); !errors.Is(err, ErrUntrusted) {
		t.Errorf("starting a binary without a checksum: %v", err)
	}
}

// markerPlugin writes a shell-script plugin that appends a line to marker whenever it runs,
// then prints a manifest for describe (or fails, with fail); it returns its path.
func markerPlugin(t *testing.T, dir, name, marker string, fail bool) string {
	t.Helper()
	body := `echo '{"name": "` + name + `", "version": "1", "protocol_version": 1, "components": [{"namespace": "evaluators", "type": "Marked"}]}'`
	if fail {
		body = "echo 'the manifest is broken' >&2\nexit 1"
	}
	script := "#!/bin/sh\necho \"$@\" >> '" + marker + "'\n" + body + "\n"
	path := filepath.Join(dir, "goselfsup-plugin-"+name)
	if err := os.WriteFile(path, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	return path
}

func ran(marker string) bool {
	_, err := os.Stat(marker)
	return err == nil
}

// No plugin code runs unless its sha256 matches its checksum file, `describe` included,
// and a cached manifest does not skip the check.
func TestNothingRunsUnapproved(t *testing.T) {
	dir := t.TempDir()
	cache := t.TempDir()
	marker := filepath.Join(t.TempDir(), "ran")
	path := markerPlugin(t, dir, "marked", marker, false)
	spec := registry.NewSpec("evaluators", "Marked", nil)
	spec.Path = "val_evaluator"

	// Not approved: not run, and a config that names its component is told why.
	h := newHost(t, Options{Dirs: []string{dir}, CacheDir: cache})
	b := notLoaded(t, h, "marked")
	if !errors.Is(b.Err, ErrUntrusted) || len(h.Binaries()) != 0 || ran(marker) {
		t.Fatalf("an unapproved plugin: loaded %v, err %v, ran %v", h.Binaries(), b.Err, ran(marker))
	}
	reg, _ := h.Extend(registry.Default)
	_, err := reg.Decode(spec)
	want := "plugin marked did not load (no checksum recorded: goselfsup-plugin-marked has no goselfsup-plugin-marked_SHA256SUM; " +
		"approve it with `tools/plugin verify --write --plugin-dir " + dir + " marked` once you trust it)"
	if err == nil || !strings.Contains(err.Error(), `val_evaluator.type: unknown evaluators type "Marked"; `+want) {
		t.Errorf("the unknown type's error:\n%v\nlacks\n%s", err, want)
	}
	if _, err := h.Start(b, ""); err == nil || ran(marker) {
		t.Errorf("Start ran an unapproved plugin: %v", err)
	}

	// Approved: described (the marker shows the script can run), and the manifest cached.
	if err := approve(path); err != nil {
		t.Fatal(err)
	}
	h = newHost(t, Options{Dirs: []string{dir}, CacheDir: cache})
	binary(t, h, "marked")
	if !ran(marker) {
		t.Fatal("the approved plugin did not run describe: the marker does not work")
	}
	os.Remove(marker)
	h = newHost(t, Options{Dirs: []string{dir}, CacheDir: cache})
	binary(t, h, "marked")
	if ran(marker) {
		t.Error("the cached manifest was not used")
	}

	// Rewritten with the same size and modification time: the cache does not skip the
	// check, and nothing runs.
	info, _ := os.Stat(path)
	data, _ := os.ReadFile(path)
	evil := strings.Replace(string(data), `"version": "1"`, `"version": "2"`, 1)
	if len(evil) != len(data) {
		t.Fatal("the rewrite changed the size")
	}
	if err := os.WriteFile(path, []byte(evil), 0o755); err != nil {
		t.Fatal(err)
	}
	os.Chtimes(path, info.ModTime(), info.ModTime())
	h = newHost(t, Options{Dirs: []string{dir}, CacheDir: cache})
	if b := notLoaded(t, h, "marked"); !errors.Is(b.Err, ErrChecksum) || ran(marker) {
		t.Fatalf("a rewritten plugin: err %v, ran %v", b.Err, ran(marker))
	}
	reg, _ = h.Extend(registry.Default)
	if _, err := reg.Decode(spec); err == nil || !strings.Contains(err.Error(), "plugin marked did not load (checksum mismatch: ") {
		t.Errorf("the unknown type's error: %v", err)
	}

	// Approved, but describe fails: its error reaches the config's.
	failing := t.TempDir()
	if err := approve(markerPlugin(t, failing, "broken", marker, true)); err != nil {
		t.Fatal(err)
	}
	h = newHost(t, Options{Dirs: []string{failing}, CacheDir: cache})
	notLoaded(t, h, "broken")
	if !ran(marker) {
		t.Fatal("the approved plugin did not run describe")
	}
	reg, _ = h.Extend(registry.Default)
	want = "plugin broken did not load (`describe` failed: exit status 1: the manifest is broken)"
	if _, err := reg.Decode(spec); err == nil || !strings.Contains(err.Error(), want) {
		t.Errorf("the unknown type's error:\n%v\nlacks\n%s", err, want)
	}
}

func TestProtocolVersionMismatch(t *testing.T) {
	h := newHost(t, Options{versions: []int{2}})
	_, err := h.Start(binary(t, h, "misbehave"), "")
	if err == nil || !strings.Contains(err.Error(), "plugin misbehave: protocol version mismatch: goselfsup speaks plugin protocol [2]") {
		t.Errorf("a protocol mismatch: %v", err)
	}
}

func TestPluginThatNeverStarts(t *testing.T) {
	dir := t.TempDir()
	// It describes itself, then never prints go-plugin's handshake.
	script := "#!/bin/sh\nif [ \"$1\" = describe ]; then\n" +
		`echo '{"name": "stuck", "protocol_version": 1, "components": [{"namespace": "evaluators", "type": "Stuck"}]}'` +
		"\nexit 0\nfi\necho 'warming up' >&2\nexec sleep 30\n"
	path := filepath.Join(dir, "goselfsup-plugin-stuck")
	if err := os.WriteFile(path, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := approve(path); err != nil {
		t.Fatal(err)
	}
	h := newHost(t, Options{Dirs: []string{dir}, StartTimeout: time.Second})
	start := time.Now()
	_, err := h.Start(binary(t, h, "stuck"), "")
	if err == nil || !strings.Contains(err.Error(), "did not start within 1s") || !strings.Contains(err.Error(), "warming up") {
		t.Errorf("a plugin that never starts: %v", err)
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Errorf("the timeout took %s", d)
	}
	// Nothing is left: no process runs the script.
	out, _ := exec.Command("pgrep", "-f", path).Output()
	if pids := strings.Fields(string(out)); len(pids) > 0 {
		t.Errorf("processes left behind: %v", pids)
	}
}

// hostHelper is a host that starts the Sleeper, prints the plugin's pid and waits to be
// killed.
func hostHelper() {
	h := New(Options{Dirs: []string{os.Getenv("GOSELFSUP_TEST_PLUGINS")}, CacheDir: "-"})
	b, ok := h.Binary("misbehave")
	if !ok {
		fmt.Println("error: no plugin", h.Problems)
		os.Exit(1)
	}
	s, err := h.Start(b, "")
	if err != nil {
		fmt.Println("error:", err)
		os.Exit(1)
	}
	go s.Evaluate(context.Background(), &pb.EvaluateRequest{Component: "Sleeper"}, func(*pb.Event) {})
	fmt.Println(s.Pid)
	time.Sleep(time.Minute)
}

func TestPluginExitsWithItsHost(t *testing.T) {
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), "GOSELFSUP_TEST_HOST=1", "GOSELFSUP_TEST_PLUGINS="+pluginDir)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil {
		cmd.Process.Kill()
		t.Fatalf("the host helper: %v %q", err, line)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(line))
	if err != nil {
		cmd.Process.Kill()
		t.Fatalf("the host helper printed %q", line)
	}
	if !alive(pid) {
		t.Fatal("the plugin is not running")
	}
	cmd.Process.Kill() // SIGKILL: the host cannot clean up
	cmd.Wait()
	waitGone(t, pid, 5*time.Second)
}

func writeNPY[T float32 | int64](t *testing.T, path, _ string, shape []int, data []T) {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := npy.Write(f, shape, data); err != nil {
		t.Fatal(err)
	}
}

package benchmark

import (
	"strings"
	"testing"

	// The components of seg-step's model register themselves, as cli imports them.
	_ "github.com/goselfsup/goselfsup/heads"
	_ "github.com/goselfsup/goselfsup/losses"
	_ "github.com/goselfsup/goselfsup/models"
)

func TestMainUsage(t *testing.T) {
	run := func(args ...string) (int, string, string) {
		var stdout, stderr strings.Builder
		code := Main(args, &stdout, &stderr)
		return code, stdout.String(), stderr.String()
	}
	code, out, _ := run("-h")
	if code != 0 || !strings.HasPrefix(out, "usage: goselfsup benchmark SUBCOMMAND [flags]\n") {
		t.Errorf("-h: exit %d\n%s", code, out)
	}
	for _, d := range docs {
		if !strings.Contains(out, "\n  "+d.name+" ") {
			t.Errorf("the usage lacks %s:\n%s", d.name, out)
		}
		if benchmarks[d.name] == nil {
			t.Errorf("%s has a doc and no function", d.name)
		}
		code, sub, errOut := run(d.name, "--help")
		if code != 0 || !strings.HasPrefix(sub, "usage: goselfsup benchmark "+d.name+" [flags]\n") || !strings.Contains(sub, "\nflags:\n  -") {
			t.Errorf("%s --help: exit %d\n%s\n%s", d.name, code, sub, errOut)
		}
	}
	if len(docs) != len(benchmarks) {
		t.Errorf("%d docs for %d benchmarks", len(docs), len(benchmarks))
	}
	if code, _, errOut := run(); code != 2 || !strings.Contains(errOut, "subcommands:") {
		t.Errorf("no subcommand: exit %d\n%s", code, errOut)
	}
	if code, _, errOut := run("nope"); code != 2 || !strings.Contains(errOut, `no benchmark "nope"`) {
		t.Errorf("an unknown subcommand: exit %d\n%s", code, errOut)
	}
	if code, _, errOut := run("knn", "--nope"); code != 2 || !strings.Contains(errOut, "usage: goselfsup benchmark knn") {
		t.Errorf("a wrong flag: exit %d\n%s", code, errOut)
	}
}

// seg-step refuses bad flags before it builds anything.
func TestSegStepFlags(t *testing.T) {
	for _, args := range [][]string{{"-model", "resnet34"}, {"-reference-device", "tpu"}, {"-classes", "300"}, {"-steps", "0"}} {
		var stdout, stderr strings.Builder
		if code := Main(append([]string{"seg-step", "-no-reference"}, args...), &stdout, &stderr); code != 2 || !strings.HasPrefix(stderr.String(), "error: ") {
			t.Errorf("%q: exit %d, want 2\n%s", args, code, stderr.String())
		}
	}
}

// seg-step runs end to end on a tiny image without PyTorch (a few seconds: it compiles the
// R18-D8 train step).
func TestSegStepNoReference(t *testing.T) {
	if testing.Short() {
		t.Skip("compiles and runs an FCN R18-D8 train step")
	}
	var stdout, stderr strings.Builder
	if code := Main([]string{"seg-step", "-no-reference", "-size", "16", "-batch", "1", "-classes", "3", "-steps", "1", "-warmup", "0"}, &stdout, &stderr); code != 0 {
		t.Fatalf("exit %d\n%s\n%s", code, stdout.String(), stderr.String())
	}
	lines := strings.Split(strings.TrimSpace(stdout.String()), "\n")
	if last := lines[len(lines)-1]; !strings.HasPrefix(last, `{"benchmark":"seg-step","ours":`) || !strings.Contains(last, `"reference":0,`) {
		t.Errorf("the last line: %s", last)
	}
}

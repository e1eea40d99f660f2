package benchmark

import (
	"strings"
	"testing"
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

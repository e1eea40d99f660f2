package cli

import (
	"io"
	"strings"
	"testing"
)

// --cfg-options, mmselfsup's name for --set, takes several key=value pairs after it.
func TestCfgOptionsIsSet(t *testing.T) {
	t.Parallel()
	sets := []string{"model.head.temperature=0.1", "work_dir=runs/my run", "model.neg_num=16"}
	code, want, errOut := runPrintConfig(npidConfig, "--set", sets[0], "--set", sets[1], "--set", sets[2])
	if code != 0 || !strings.Contains(want, "neg_num = 16\n") || !strings.Contains(want, `work_dir = "runs/my run"`) {
		t.Fatalf("--set: exit %d\n%s\n%s", code, want, errOut)
	}
	for _, args := range [][]string{
		{npidConfig, "--cfg-options", sets[0], sets[1], sets[2]},
		{"--cfg-options", sets[0], sets[1], npidConfig, "-cfg-options", sets[2]},
		{"--cfg-options=" + sets[0], "--set", sets[1], npidConfig, "--cfg-options", sets[2]},
	} {
		code, out, errOut := runPrintConfig(args...)
		if code != 0 || out != want {
			t.Errorf("%q: exit %d, output differs from --set's:\n%s\n%s", args, code, out, errOut)
		}
	}
	// A value after --cfg-options=... is a positional argument, as in argparse.
	if code, _, errOut := runPrintConfig("--cfg-options="+sets[0], sets[1], npidConfig); code != 2 || !strings.Contains(errOut, "usage: goselfsup print_config") {
		t.Errorf("two CONFIGs: exit %d\n%s", code, errOut)
	}
}

// -h prints the usage to stdout and exits 0; a wrong flag prints it to stderr and exits 2.
func TestHelpFlag(t *testing.T) {
	t.Parallel()
	for _, tool := range []struct {
		name string
		run  func([]string, io.Writer, io.Writer) int
	}{{"train", Train}, {"print_config", PrintConfig}, {"extract", Extract}, {"knn", KNN}, {"svm", SVM},
		{"linear", Linear}, {"evaluate", Evaluate}, {"plugin", Plugin}} {
		code, out, errOut := run(tool.run, "-h")
		if code != 0 || !strings.HasPrefix(out, "usage: goselfsup "+tool.name+" ") || errOut != "" {
			t.Errorf("%s -h: exit %d\nstdout: %s\nstderr: %s", tool.name, code, out, errOut)
		}
		wrong := []string{"--no-such-flag"}
		if tool.name == "plugin" {
			wrong = []string{"list", "--no-such-flag"}
		}
		code, out, errOut = run(tool.run, wrong...)
		if code != 2 || out != "" || !strings.Contains(errOut, "flag provided but not defined: -no-such-flag\nusage: goselfsup "+tool.name+" ") {
			t.Errorf("%s --no-such-flag: exit %d\nstdout: %s\nstderr: %s", tool.name, code, out, errOut)
		}
	}
}

package cli

import (
	"fmt"
	"io"
	"os/exec"
	"slices"
	"strings"
	"testing"
)

func runMain(args ...string) (int, string, string) {
	var out, errOut strings.Builder
	code := Main(args, &out, &errOut)
	return code, out.String(), errOut.String()
}

// Every command's -h, --help and "help COMMAND" exit 0 with its usage line on stdout; the
// commands that take --set take --cfg-options too.
func TestMainHelp(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		args  []string
		usage string
	}{
		{[]string{"train"}, "usage: goselfsup train [CONFIG] [flags]\n"},
		{[]string{"print_config"}, "usage: goselfsup print_config CONFIG [flags]\n"},
		{[]string{"extract"}, "usage: goselfsup extract BENCHMARK_CONFIG [CHECKPOINT] [flags]\n"},
		{[]string{"knn"}, "usage: goselfsup knn BENCHMARK_CONFIG [CHECKPOINT] [flags]\n"},
		{[]string{"svm"}, "usage: goselfsup svm BENCHMARK_CONFIG [CHECKPOINT] [flags]\n"},
		{[]string{"linear"}, "usage: goselfsup linear CONFIG [CHECKPOINT] [flags]\n"},
		{[]string{"evaluate"}, "usage: goselfsup evaluate BENCHMARK_CONFIG [CHECKPOINT] [flags]\n"},
		{[]string{"plugin"}, "usage: goselfsup plugin list | describe NAME [--start] | verify [NAME ...] | verify --write NAME ...\n"},
		{[]string{"plugin", "describe"}, "usage: goselfsup plugin list"},
		{[]string{"benchmark"}, "usage: goselfsup benchmark SUBCOMMAND [flags]\n"},
		{[]string{"benchmark", "train-step"}, "usage: goselfsup benchmark train-step [flags]\n"},
		{[]string{"benchmark", "seg-step"}, "usage: goselfsup benchmark seg-step [flags]\n"},
		{[]string{"benchmark", "svm"}, "usage: goselfsup benchmark svm [flags]\n"},
	} {
		ways := [][]string{append(tc.args, "-h"), append(tc.args[:len(tc.args):len(tc.args)], "--help")}
		if len(tc.args) == 1 {
			ways = append(ways, []string{"help", tc.args[0]})
		}
		for _, args := range ways {
			code, out, errOut := runMain(args...)
			if code != 0 || !strings.HasPrefix(out, tc.usage) || errOut != "" {
				t.Errorf("%q: exit %d, want 0 and %q\nstdout: %s\nstderr: %s", args, code, tc.usage, out, errOut)
			}
			if strings.Contains(out, "\n  -set ") != strings.Contains(out, "\n  -cfg-options ") {
				t.Errorf("%q: --set and --cfg-options are not both there:\n%s", args, out)
			}
			if !strings.Contains(out, "\nflags:\n  -") && !slices.Equal(tc.args, []string{"benchmark"}) { // its subcommands have flags
				t.Errorf("%q: the flags are not listed:\n%s", args, out)
			}
		}
	}
	// The table above has every command.
	for _, c := range commandList() {
		if strings.HasPrefix(c.Name, "test-") {
			continue // registered by TestRegister
		}
		if code, out, _ := runMain(c.Name, "-h"); code != 0 || !strings.HasPrefix(out, "usage: goselfsup "+c.Name+" ") {
			t.Errorf("%s -h: exit %d\n%s", c.Name, code, out)
		}
	}
}

// Without a command, Main lists the commands with their docs on stderr and exits 2; with
// -h or help, on stdout and exits 0.
func TestMainList(t *testing.T) {
	t.Parallel()
	code, out, errOut := runMain()
	if code != 2 || out != "" || !strings.HasPrefix(errOut, "usage: goselfsup COMMAND [ARGS] [flags]\n") {
		t.Errorf("no arguments: exit %d\nstdout: %s\nstderr: %s", code, out, errOut)
	}
	for _, args := range [][]string{{"-h"}, {"--help"}, {"help"}, {"help", "-h"}} {
		code, out, errOut := runMain(args...)
		if code != 0 || errOut != "" {
			t.Errorf("%q: exit %d\n%s", args, code, errOut)
		}
		for _, c := range append(commandList(), Command{Name: "help"}, Command{Name: "version"}) {
			if !hasRow(out, c.Name) {
				t.Errorf("%q: the list lacks %s:\n%s", args, c.Name, out)
			}
		}
		if !strings.Contains(out, "  train         train a model from a config") {
			t.Errorf("%q: the list lacks the docs:\n%s", args, out)
		}
	}
	if code, out, _ := runMain("version"); code != 0 || !strings.HasPrefix(out, "goselfsup ") {
		t.Errorf("version: exit %d: %s", code, out)
	}
}

// An unknown command exits 2 and names the known ones.
func TestMainUnknownCommand(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		args []string
		name string
	}{{[]string{"trian", "x.toml"}, "trian"}, {[]string{"help", "trian"}, "trian"}, {[]string{"--set", "a=1"}, "--set"}} {
		code, out, errOut := runMain(tc.args...)
		want := fmt.Sprintf("error: unknown command %q; the commands are train, print_config, extract, knn, svm, linear, evaluate, plugin, benchmark, ", tc.name)
		if code != 2 || out != "" || !strings.HasPrefix(errOut, want) || !strings.Contains(errOut, "help and version") {
			t.Errorf("%q: exit %d, want 2 and %q\nstdout: %s\nstderr: %s", tc.args, code, want, out, errOut)
		}
	}
	// A wrong command line of a known command exits 2 too, with its usage on stderr.
	if code, out, errOut := runMain("knn"); code != 2 || out != "" || !strings.HasPrefix(errOut, "usage: goselfsup knn ") {
		t.Errorf("knn without a config: exit %d\nstdout: %s\nstderr: %s", code, out, errOut)
	}
}

// A build of one's own adds commands with Register.
func TestRegister(t *testing.T) {
	Register(Command{Name: "test-echo", Doc: "echoes its arguments", Run: func(args []string, stdout, _ io.Writer) int {
		fmt.Fprintln(stdout, strings.Join(args, " "))
		return 3
	}})
	if code, out, _ := runMain("test-echo", "a", "b"); code != 3 || out != "a b\n" {
		t.Errorf("test-echo: exit %d: %q", code, out)
	}
	if _, out, _ := runMain("help"); !strings.Contains(out, "test-echo     echoes its arguments\n") {
		t.Errorf("the list lacks test-echo:\n%s", out)
	}
	for _, name := range []string{"train", "help", "test-echo"} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("registering %s again did not panic", name)
				}
			}()
			Register(Command{Name: name, Run: func([]string, io.Writer, io.Writer) int { return 0 }})
		}()
	}
}

// The tools/* mains and cmd/goselfsup compile (go vet type-checks them without linking ten
// binaries; go build ./tools/... ./cmd/... links them too).
func TestMainsCompile(t *testing.T) {
	t.Parallel()
	if out, err := exec.Command("go", "vet", "../tools/...", "../cmd/...").CombinedOutput(); err != nil {
		t.Fatalf("go vet: %v\n%s", err, out)
	}
}

package cli

import (
	"fmt"
	"io"
	"runtime"
	"runtime/debug"
	"strings"
	"sync"

	"github.com/goselfsup/goselfsup/internal/benchmark"
)

// Command is a subcommand of Main.
type Command struct {
	Name string // what one types: train, print_config, ...
	Doc  string // one line, for the list of commands
	// Run runs the command with the arguments after its name and returns the exit code: 0,
	// 1 when the run fails, 2 when the command line is wrong. -h and --help should print
	// the command's usage ("usage: goselfsup NAME ...") to stdout and return 0.
	Run func(args []string, stdout, stderr io.Writer) int
}

var (
	commandsMu sync.RWMutex
	// commands are Main's subcommands, in the order of the list; Register appends.
	commands = []Command{
		{"train", "train a model from a config; without one, the demo on the CPU", Train},
		{"print_config", "print a merged config as TOML and check it; list the shipped configs and components", PrintConfig},
		{"extract", "write a model's features of a benchmark's datasets as NumPy files", Extract},
		{"knn", "the weighted kNN benchmark on a model's features", KNN},
		{"svm", "the VOC07 SVM benchmark (and its low-shot runs) on a model's features", SVM},
		{"linear", "train a linear classifier on a frozen self-supervised backbone", Linear},
		{"evaluate", "run a benchmark config's evaluator: kNN, SVM, your own or a plugin's", Evaluate},
		{"plugin", "list, describe and verify the installed plugins", Plugin},
		{"benchmark", "time goselfsup against PyTorch, torchvision, FAISS and scikit-learn", benchmark.Main},
	}
)

// Register adds a command to Main, for a build of one's own: call it before Main, from main
// or an init function. It panics if the name is taken (help and version are).
func Register(c Command) {
	commandsMu.Lock()
	defer commandsMu.Unlock()
	if c.Name == "" || c.Run == nil {
		panic("cli.Register: a command needs a Name and a Run")
	}
	if _, ok := lookupLocked(c.Name); ok || c.Name == "help" || c.Name == "version" {
		panic(fmt.Sprintf("cli.Register: command %q is already registered", c.Name))
	}
	commands = append(commands, c)
}

// commandList returns Main's commands, in the order of the list.
func commandList() []Command {
	commandsMu.RLock()
	defer commandsMu.RUnlock()
	return append([]Command(nil), commands...)
}

func lookup(name string) (Command, bool) {
	commandsMu.RLock()
	defer commandsMu.RUnlock()
	return lookupLocked(name)
}

func lookupLocked(name string) (Command, bool) {
	for _, c := range commands {
		if c.Name == name {
			return c, true
		}
	}
	return Command{}, false
}

// Main is the entry point of goselfsup (cmd/goselfsup) and of the tools/* mains: args are
// the command line after the program's name, the first being the command (train,
// print_config, ..., help, version), and the result is the exit code: 0, 1 when the run
// fails, 2 when the command line is wrong.
//
//	goselfsup train configs/npid/resnet50_8xb32-steplr-200e.toml --work-dir runs/r50
//	goselfsup help train
func Main(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		printCommands(stderr)
		return exitUsage
	}
	switch name := args[0]; {
	case isHelp(name) || name == "help" && (len(args) == 1 || isHelp(args[1])):
		printCommands(stdout)
		return exitOK
	case name == "help":
		if len(args) > 2 {
			fmt.Fprintln(stderr, "usage: goselfsup help [COMMAND]")
			return exitUsage
		}
		c, ok := lookup(args[1])
		if !ok {
			return unknownCommand(stderr, args[1])
		}
		return c.Run([]string{"-h"}, stdout, stderr)
	case name == "version":
		fmt.Fprintln(stdout, version())
		return exitOK
	default:
		c, ok := lookup(name)
		if !ok {
			return unknownCommand(stderr, name)
		}
		return c.Run(args[1:], stdout, stderr)
	}
}

func unknownCommand(stderr io.Writer, name string) int {
	var names []string
	for _, c := range commandList() {
		names = append(names, c.Name)
	}
	fmt.Fprintf(stderr, "error: unknown command %q; the commands are %s, help and version (goselfsup help lists them)\n",
		name, strings.Join(names, ", "))
	return exitUsage
}

func printCommands(w io.Writer) {
	fmt.Fprint(w, `usage: goselfsup COMMAND [ARGS] [flags]

Self-supervised visual representation learning (NPID) with mmselfsup's configs, in Go.
"goselfsup help COMMAND" or "goselfsup COMMAND -h" describes a command.

commands:
`)
	list := append(commandList(),
		Command{Name: "help", Doc: "this list, or a command's usage: goselfsup help [COMMAND]"},
		Command{Name: "version", Doc: "the version of goselfsup and of Go of this binary"})
	width := 0
	for _, c := range list {
		width = max(width, len(c.Name))
	}
	for _, c := range list {
		fmt.Fprintf(w, "  %-*s  %s\n", width, c.Name, c.Doc)
	}
}

// modulePath is goselfsup's module, whose version version reports in a build of one's own.
const modulePath = "github.com/goselfsup/goselfsup"

// version is "goselfsup VERSION GOVERSION", from the build information.
func version() string {
	v := "(unknown)"
	if info, ok := debug.ReadBuildInfo(); ok {
		if info.Main.Path == modulePath {
			v = info.Main.Version
		}
		for _, d := range info.Deps {
			if d.Path == modulePath {
				v = d.Version
				if d.Replace != nil {
					v += " => " + d.Replace.Path + " " + d.Replace.Version
				}
			}
		}
	}
	return fmt.Sprintf("goselfsup %s %s", v, runtime.Version())
}

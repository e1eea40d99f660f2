// Package cli holds goselfsup's commands: Main dispatches a command line to its subcommand
// (train, print_config, extract, knn, svm, linear, evaluate, plugin, benchmark), as the
// goselfsup binary (cmd/goselfsup) and the tools/* mains do. A build with one's own
// components is one main that imports the component packages (which register themselves in
// init) and calls Main; it has every subcommand, and Register adds one's own:
//
//	package main
//
//	import (
//		"os"
//
//		"github.com/goselfsup/goselfsup/cli"
//		_ "example.com/mylab/mybackbone" // registers backbones.MyNet
//	)
//
//	func main() { os.Exit(cli.Main(os.Args[1:], os.Stdout, os.Stderr)) }
//
// The subcommands' entry points (Train, PrintConfig, ...) are exported too: each takes the
// arguments after the subcommand's name.
package cli

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"

	"github.com/goselfsup/goselfsup/configs"
	"go.uber.org/zap"

	"github.com/goselfsup/goselfsup/engine"
	"github.com/goselfsup/goselfsup/internal/cmdline"
	"github.com/goselfsup/goselfsup/registry"

	// The built-in components register themselves.
	_ "github.com/goselfsup/goselfsup/datasets"
	_ "github.com/goselfsup/goselfsup/evaluators"
	_ "github.com/goselfsup/goselfsup/heads"
	_ "github.com/goselfsup/goselfsup/losses"
	_ "github.com/goselfsup/goselfsup/models"
)

// Exit codes of the tools.
const (
	exitOK     = 0
	exitFailed = 1 // the config, data or run failed
	exitUsage  = 2 // the command line is wrong
)

// Loader reads configs from disk, falling back to the configs shipped in the binary.
func Loader() *registry.Loader { return &registry.Loader{Shipped: configs.FS} }

// LoadConfig loads a config file, applies the overrides in order and decodes and checks the
// result, every component included, those of the installed plugins too (those of
// host.DefaultDirs that are approved). The tree is returned even when the check fails, so
// that a tool can still show it.
func LoadConfig(path string, overrides []string) (*registry.Tree, *engine.Config, error) {
	tree, cfg, _, err := loadConfig(path, overrides, nil, nil)
	return tree, cfg, err
}

// loadConfig is LoadConfig returning the registry it decoded with: the built-in components
// and, when plugins are installed (in the folders of --plugin-dir, extraPluginDirs, or the
// default ones), those of the approved ones. A plugin runs only if its checksum file
// matches, for `describe` at most (plugin processes start when a component runs); the
// plugins that did not load are named by an unknown-type error. log receives the plugins'
// log lines.
func loadConfig(path string, overrides, extraPluginDirs []string, log *zap.Logger) (*registry.Tree, *engine.Config, *registry.Registry, error) {
	tree, err := Loader().Load(path)
	if err != nil {
		return nil, nil, nil, err
	}
	for _, o := range overrides {
		if err := tree.Set(o); err != nil {
			return nil, nil, nil, err
		}
	}
	reg := componentRegistry(extraPluginDirs, log)
	cfg := new(engine.Config)
	if err := reg.DecodeTree(tree, cfg); err != nil {
		return tree, nil, reg, err
	}
	// Keys that contradict each other (a milestone after the last epoch) fail here, in
	// print_config as in train.
	if err := engine.CheckRun(reg, cfg, engine.RunLength{}); err != nil {
		return tree, nil, reg, err
	}
	return tree, cfg, reg, nil
}

// componentRegistry is the registry that the config tools decode with: the built-in
// components and those of the plugins found (their processes start only when a component
// runs). Clashing plugin components are left out, and noted with the plugins that did not
// load; tools/plugin list reports them. log receives the plugins' log lines.
func componentRegistry(extraPluginDirs []string, log *zap.Logger) *registry.Registry {
	h := newHost(pluginDirs(extraPluginDirs), log)
	reg, _ := h.Extend(registry.Default)
	return reg
}

// stringList is a repeatable string flag.
type stringList []string

func (s *stringList) String() string     { return strings.Join(*s, " ") }
func (s *stringList) Set(v string) error { *s = append(*s, v); return nil }

// parseArgs parses flags that may come before or after the positional arguments; -h and
// --help print fs's usage to stdout (usageExit(err) is then 0), and --cfg-options takes
// several key=value pairs (see cmdline.Parse).
func parseArgs(fs *flag.FlagSet, args []string, stdout io.Writer) ([]string, error) {
	return cmdline.Parse(fs, args, stdout)
}

// usageExit is the exit code after parseArgs fails: exitOK after -h or --help, else exitUsage.
func usageExit(err error) int { return cmdline.ExitCode(err) }

// isHelp reports whether arg is -h or --help.
func isHelp(arg string) bool { return cmdline.IsHelp(arg) }

// setFlags defines --set and its alias --cfg-options (mmselfsup's name, which takes one or
// more key=value pairs), both appending to sets.
func setFlags(fs *flag.FlagSet, sets *stringList, doc string) {
	fs.Var(sets, "set", doc)
	fs.Var(sets, cmdline.CfgOptions, "the same as --set, as mmselfsup names it; takes one or more `key=value` pairs")
}

// report writes an error for the user: one line per config problem.
func report(w io.Writer, err error) {
	var list registry.Errors
	if errors.As(err, &list) {
		fmt.Fprintf(w, "error: the config has %d problem(s):\n", len(list))
		for _, e := range list {
			fmt.Fprintf(w, "  %s\n", e)
		}
		return
	}
	fmt.Fprintf(w, "error: %s\n", err)
}

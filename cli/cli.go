// Package cli holds the command-line tools' entry points, so that a user's own main can
// import extra component packages (which register themselves in init) and call the same
// entry point as the shipped tools:
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
//	func main() { os.Exit(cli.PrintConfig(os.Args[1:], os.Stdout, os.Stderr)) }
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
	"github.com/goselfsup/goselfsup/plugins/host"
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
	reg := registry.Default
	if h := host.New(host.Options{Dirs: pluginDirs(extraPluginDirs), Log: log}); len(h.Binaries())+len(h.NotLoaded()) > 0 {
		// Clashing plugin components are left out, and noted with the plugins that did not
		// load; tools/plugin list reports them.
		reg, _ = h.Extend(registry.Default)
	}
	cfg := new(engine.Config)
	if err := reg.DecodeTree(tree, cfg); err != nil {
		return tree, nil, reg, err
	}
	return tree, cfg, reg, nil
}

// stringList is a repeatable string flag.
type stringList []string

func (s *stringList) String() string     { return strings.Join(*s, " ") }
func (s *stringList) Set(v string) error { *s = append(*s, v); return nil }

// parseArgs parses flags that may come before or after the positional arguments.
func parseArgs(fs *flag.FlagSet, args []string) ([]string, error) {
	var positional []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		args = fs.Args()
		if len(args) == 0 {
			return positional, nil
		}
		positional = append(positional, args[0])
		args = args[1:]
	}
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

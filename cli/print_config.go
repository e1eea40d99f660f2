package cli

import (
	"flag"
	"fmt"
	"io"
	"strings"

	"github.com/goselfsup/goselfsup/registry"
)

const printConfigUsage = `usage: print_config [flags] CONFIG

Prints the merged config (CONFIG, its _base_ files and the --set overrides) as TOML and
checks every component in it against the registry. Exits non-zero if the config has a
problem. A CONFIG such as configs/npid/x.toml that is not on disk is read from the configs
that ship in the binary; goselfsup::npid/x.toml always is.

flags:
`

// PrintConfig is the entry point of tools/print_config.
func PrintConfig(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("print_config", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var sets, explains stringList
	fs.Var(&sets, "set", "override a key: `key.path=value` in TOML syntax (a bare word is a string); repeatable")
	fs.Var(&explains, "explain", "print the files and overrides that set `KEY`, instead of the config; repeatable")
	list := fs.Bool("list", false, "list the shipped configs")
	components := fs.Bool("components", false, "list the registered components by namespace")
	plugins := addPluginFlags(fs)
	fs.Usage = func() {
		fmt.Fprint(stderr, printConfigUsage)
		fs.PrintDefaults()
	}
	pos, err := parseArgs(fs, args)
	if err != nil {
		return exitUsage
	}
	switch {
	case *list:
		names, err := Loader().ListShipped()
		if err != nil {
			report(stderr, err)
			return exitFailed
		}
		fmt.Fprintln(stdout, strings.Join(names, "\n"))
		return exitOK
	case *components:
		printComponents(stdout, registry.Default)
		return exitOK
	case len(pos) != 1:
		fs.Usage()
		return exitUsage
	}

	tree, _, _, err := loadConfig(pos[0], sets, *plugins, nil)
	if tree == nil {
		report(stderr, err)
		return exitFailed
	}
	if len(explains) > 0 {
		for _, key := range explains {
			text, xerr := tree.Explain(key)
			if xerr != nil {
				report(stderr, xerr)
				return exitFailed
			}
			fmt.Fprint(stdout, text)
		}
	} else if werr := tree.WriteTOML(stdout); werr != nil {
		report(stderr, werr)
		return exitFailed
	}
	if err != nil {
		report(stderr, err)
		return exitFailed
	}
	return exitOK
}

func printComponents(w io.Writer, r *registry.Registry) {
	for _, ns := range r.Namespaces() {
		fmt.Fprintf(w, "%s:\n", ns)
		for _, c := range r.List(ns) {
			fmt.Fprintf(w, "  %-24s %s\n", c.Type, c.Doc)
		}
	}
}

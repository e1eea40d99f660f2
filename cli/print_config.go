package cli

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/goselfsup/goselfsup/plugins/host"
	"github.com/goselfsup/goselfsup/registry"
)

const printConfigUsage = `usage: goselfsup print_config CONFIG [flags]
       goselfsup print_config --list | --components
       goselfsup print_config --describe TYPE

Prints the merged config (CONFIG, its _base_ files and the --set overrides) as TOML and
checks every component in it against the registry. Exits non-zero if the config has a
problem. A CONFIG such as configs/npid/x.toml that is not on disk is read from the configs
that ship in the binary; goselfsup::npid/x.toml always is.

--components lists the registered components, those of the installed plugins too;
--describe prints a component's keys with their types, defaults and docs (TYPE such as
ResNet, or backbones.ResNet where several namespaces have the type).

flags:
`

// PrintConfig is the entry point of tools/print_config.
func PrintConfig(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("print_config", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var sets, explains stringList
	setFlags(fs, &sets, "override a key: `key.path=value` in TOML syntax (a bare word is a string); repeatable")
	fs.Var(&explains, "explain", "print the files and overrides that set `KEY`, instead of the config; repeatable")
	list := fs.Bool("list", false, "list the shipped configs")
	components := fs.Bool("components", false, "list the registered components by namespace")
	describe := fs.String("describe", "", "print the keys, types, defaults and docs of the component `TYPE` (ResNet or backbones.ResNet)")
	plugins := addPluginFlags(fs)
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), printConfigUsage)
		fs.PrintDefaults()
	}
	pos, err := parseArgs(fs, args, stdout)
	if err != nil {
		return usageExit(err)
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
		printComponents(stdout, componentRegistry(*plugins, nil))
		return exitOK
	case *describe != "":
		if len(pos) != 0 {
			fs.Usage()
			return exitUsage
		}
		return printDescription(stdout, stderr, componentRegistry(*plugins, nil), *describe)
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

// pluginOf returns the plugin that provides a component, or nil for a built-in one.
func pluginOf(c registry.Component) *host.Binary {
	if pc, ok := c.New().(*host.PluginComponent); ok {
		return pc.Binary
	}
	return nil
}

func printComponents(w io.Writer, r *registry.Registry) {
	for _, ns := range r.Namespaces() {
		fmt.Fprintf(w, "%s:\n", ns)
		for _, c := range r.List(ns) {
			doc := c.Doc
			if b := pluginOf(c); b != nil && !strings.Contains(doc, "plugin "+b.Name) {
				doc += " (plugin " + b.Name + ")"
			}
			fmt.Fprintf(w, "  %-24s %s\n", c.Type, doc)
		}
	}
}

// printDescription prints what --describe shows: the component, a table of its keys and
// where it comes from.
func printDescription(stdout, stderr io.Writer, r *registry.Registry, name string) int {
	c, err := r.Find(name)
	if err != nil {
		var nf *registry.NotFoundError
		if errors.As(err, &nf) {
			err = fmt.Errorf("%w\n(print_config --components lists them all)", err)
		}
		report(stderr, err)
		return exitFailed
	}
	d, err := r.Describe(c.Namespace, c.Type)
	if err != nil {
		report(stderr, err)
		return exitFailed
	}
	fmt.Fprintf(stdout, "%s: %s\n\n", d.ID, d.Doc)
	switch {
	case d.SelfChecked:
		fmt.Fprintln(stdout, "  (the component checks its keys itself and does not list them)")
	case len(d.Keys) == 0:
		fmt.Fprintln(stdout, "  (no keys)")
	default:
		rows := [][]string{{"key", "type", "default", "doc"}}
		for _, k := range d.Keys {
			def := k.Default
			switch {
			case k.Required:
				def = "(required)"
			case def == "":
				def = "-"
			}
			rows = append(rows, []string{k.Name, k.Type, def, k.Doc})
		}
		writeColumns(stdout, rows, 36)
	}
	fmt.Fprintln(stdout)
	if b := pluginOf(c); b != nil {
		fmt.Fprintf(stdout, "provided by plugin %s (%s)\n", b.Name, b.Path)
	} else {
		fmt.Fprintf(stdout, "registered at %s\n", shortPath(d.Source))
	}
	return exitOK
}

// writeColumns writes rows in aligned columns, two spaces apart. A cell wider than
// maxWidth does not widen its column: the rest of its row moves right instead.
func writeColumns(w io.Writer, rows [][]string, maxWidth int) {
	var widths []int
	for _, row := range rows {
		for i, cell := range row {
			if i >= len(widths) {
				widths = append(widths, 0)
			}
			if n := len([]rune(cell)); n <= maxWidth {
				widths[i] = max(widths[i], n)
			}
		}
	}
	for _, row := range rows {
		var b strings.Builder
		b.WriteString("  ")
		for i, cell := range row {
			b.WriteString(cell)
			if i < len(row)-1 {
				b.WriteString(strings.Repeat(" ", max(widths[i]-len([]rune(cell)), 0)+2))
			}
		}
		fmt.Fprintln(w, strings.TrimRight(b.String(), " "))
	}
}

// shortPath makes a file:line under the working directory relative to it.
func shortPath(source string) string {
	wd, err := os.Getwd()
	if err != nil || !filepath.IsAbs(source) {
		return source
	}
	if rel, err := filepath.Rel(wd, source); err == nil && filepath.IsLocal(rel) {
		return rel
	}
	return source
}

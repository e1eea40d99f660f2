package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"go.uber.org/zap"

	"github.com/goselfsup/goselfsup/plugins/detbench"
	"github.com/goselfsup/goselfsup/plugins/host"
	"github.com/goselfsup/goselfsup/plugins/segbench"
	"github.com/goselfsup/goselfsup/registry"
)

const pluginUsage = `usage: goselfsup plugin list | describe NAME [--start] | verify [NAME ...] | verify --write NAME ...
       [--plugin-dir DIR ...]

Manages goselfsup plugins: programs named goselfsup-plugin-<name>, found in the folders of
--plugin-dir, then of $GOSELFSUP_PLUGIN_PATH, then ~/.config/goselfsup/plugins (the first
of a name wins). A project's ./plugins folder is searched only when named with --plugin-dir.

A plugin runs (to describe itself, or to evaluate) only once approved: when its binary's
sha256 matches the one its goselfsup-plugin-<name>_SHA256SUM file records, which
verify --write writes. One not approved, or changed since, is listed, and not run.

goselfsup's own plugins (seg: the segmentation benchmark MMSegBenchmark; det: the detection
benchmark MMDetBenchmark) need no installing: the tools build them from the checkout they
run in, with go build, the first time a config names one of their components, into a folder
of the user's cache, and record their checksum there. An installed plugin of the same name
takes the place of one of them.

  list       the plugins found, their components, checksum state, and why any did not load
  describe   a plugin's manifest; --start also starts it, asks it over gRPC and times that
  verify     compares each plugin (or those named) with its checksum file; --write NAME
             approves the plugins named: writes their checksum files from the binaries as
             they are now (check what they are first)

flags:
`

// addPluginFlags adds --plugin-dir, repeatable, to the flags of a tool that loads configs
// or plugins, and returns the folders it collects (see pluginDirs).
func addPluginFlags(fs *flag.FlagSet) *stringList {
	dirs := new(stringList)
	fs.Var(dirs, "plugin-dir", "also search `DIR` for plugins, before $GOSELFSUP_PLUGIN_PATH and ~/.config/goselfsup/plugins; "+
		"repeatable (a project's ./plugins is searched only when named: --plugin-dir plugins)")
	return dirs
}

// pluginDirs returns the folders searched for plugins: those of --plugin-dir, then
// host.DefaultDirs(), each once.
func pluginDirs(extra []string) []string {
	var dirs []string
	for _, d := range append(slices.Clone(extra), host.DefaultDirs()...) {
		if !slices.ContainsFunc(dirs, func(o string) bool { return filepath.Clean(o) == filepath.Clean(d) }) {
			dirs = append(dirs, d)
		}
	}
	return dirs
}

// FirstPartyPlugins are goselfsup's own plugins: the tools know their components without
// starting them, and build them from the checkout the first time one runs (unless a
// searched folder holds a plugin of the same name).
func FirstPartyPlugins() []host.FirstParty {
	seg, det := segbench.Plugin(), detbench.Plugin()
	return []host.FirstParty{
		{Name: seg.Name, Package: host.Module + "/cmd/goselfsup-plugin-seg", Manifest: seg.Manifest()},
		{Name: det.Name, Package: host.Module + "/cmd/goselfsup-plugin-det", Manifest: det.Manifest()},
	}
}

// newHost finds the plugins of dirs, with the first-party ones; log receives the plugins'
// log lines and the first-party builds' messages.
func newHost(dirs []string, log *zap.Logger) *host.Host {
	return host.New(host.Options{Dirs: dirs, Log: log, FirstParty: FirstPartyPlugins()})
}

// Plugin is the entry point of tools/plugin. It depends on no working directory: it finds
// plugins in the folders named, $GOSELFSUP_PLUGIN_PATH's and the user's.
func Plugin(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("plugin", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(fs.Output(), pluginUsage); fs.PrintDefaults() }
	write := fs.Bool("write", false, "verify: approve the plugins named, writing their checksum files instead of checking them")
	start := fs.Bool("start", false, "describe: start the plugin and ask it for its manifest over gRPC, timing it")
	extra := addPluginFlags(fs)
	if len(args) == 0 {
		fs.Usage()
		return exitUsage
	}
	if isHelp(args[0]) {
		fs.SetOutput(stdout)
		fs.Usage()
		return exitOK
	}
	pos, err := parseArgs(fs, args[1:], stdout)
	if err != nil {
		return usageExit(err)
	}
	dirs := pluginDirs(*extra)
	h := newHost(dirs, consoleLogger(stderr))
	defer h.Close()
	switch args[0] {
	case "list":
		return pluginList(h, dirs, stdout)
	case "describe":
		if len(pos) != 1 {
			fs.Usage()
			return exitUsage
		}
		return pluginDescribe(h, pos[0], *start, stdout, stderr)
	case "verify":
		if *write && len(pos) == 0 {
			fmt.Fprintln(stderr, "error: verify --write approves the plugins named: give their names (see `plugin list`)")
			return exitUsage
		}
		return pluginVerify(h, pos, *write, stdout, stderr)
	}
	fs.Usage()
	return exitUsage
}

// found returns every plugin found, loaded or not, by name.
func found(h *host.Host) []*host.Binary {
	all := append(slices.Clone(h.Binaries()), h.NotLoaded()...)
	slices.SortFunc(all, func(a, b *host.Binary) int { return strings.Compare(a.Name, b.Name) })
	return all
}

func pluginList(h *host.Host, dirs []string, stdout io.Writer) int {
	fmt.Fprintf(stdout, "searched: %s\n", strings.Join(dirs, ", "))
	all := found(h)
	tw := tabwriter.NewWriter(stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "plugin\tversion\tchecksum\tcomponents\tpath")
	for _, b := range all {
		version, comps := "-", "(not loaded)"
		if b.Err == nil {
			version = b.Manifest.Version
			var names []string
			for _, c := range b.Manifest.Components {
				names = append(names, c.Namespace+"."+c.Type)
			}
			comps = strings.Join(names, ", ")
		}
		path := b.Path
		if b.FirstParty() {
			path = "(first-party: built from this checkout when it first runs)"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", b.Name, version, checksumState(b), comps, path)
		for _, s := range b.Shadowed {
			fmt.Fprintf(tw, "\t\t\t(shadowed)\t%s\n", s)
		}
	}
	tw.Flush()
	for _, b := range h.NotLoaded() {
		fmt.Fprintf(stdout, "not loaded: %s: %v\n", b.Name, b.Err)
	}
	if _, err := h.Extend(registry.Default); err != nil {
		fmt.Fprintf(stdout, "not usable: %v\n", err)
	}
	for _, p := range h.Problems {
		fmt.Fprintf(stdout, "problem: %v\n", p)
	}
	if len(all) == 0 {
		fmt.Fprintln(stdout, "no plugins found")
	}
	return exitOK
}

// checksumState is a binary's checksum, as list shows it.
func checksumState(b *host.Binary) string {
	switch {
	case b.FirstParty():
		return "at build"
	case b.Err == nil:
		return "verified" // New verified it
	case errors.Is(b.Err, host.ErrUntrusted):
		return "none"
	case errors.Is(b.Err, host.ErrChecksum):
		return "MISMATCH"
	case b.Verify() == nil:
		return "verified" // its describe failed
	}
	return "unreadable"
}

// lookup returns the plugin of a name, loaded or not, or reports that there is none.
func findPlugin(h *host.Host, name string, stderr io.Writer) (*host.Binary, bool) {
	b, ok := h.Found(name)
	if !ok {
		report(stderr, fmt.Errorf("no plugin %q (see `plugin list`)", name))
	}
	return b, ok
}

func pluginDescribe(h *host.Host, name string, start bool, stdout, stderr io.Writer) int {
	b, ok := findPlugin(h, name, stderr)
	if !ok {
		return exitFailed
	}
	if b.Err != nil {
		report(stderr, fmt.Errorf("plugin %s (%s) did not load, and was not run: %w", b.Name, b.Path, b.Err))
		return exitFailed
	}
	fmt.Fprintln(stdout, host.ManifestJSON(b.Manifest))
	if !start {
		return exitOK
	}
	t0 := time.Now()
	s, err := h.Start(b, "")
	if err != nil {
		report(stderr, err)
		return exitFailed
	}
	started := time.Since(t0)
	m, err := s.Info(context.Background())
	called := time.Since(t0)
	s.Close()
	stopped := time.Since(t0)
	if err != nil {
		report(stderr, err)
		return exitFailed
	}
	fmt.Fprintf(stdout, "started %s (pid %d) in %s; Info answered at %s (%d components); stopped at %s\n",
		b.Path, s.Pid, started.Round(time.Microsecond), called.Round(time.Microsecond), len(m.Components), stopped.Round(time.Microsecond))
	return exitOK
}

func pluginVerify(h *host.Host, names []string, write bool, stdout, stderr io.Writer) int {
	targets := found(h)
	if len(names) > 0 {
		targets = nil
		for _, n := range names {
			b, ok := findPlugin(h, n, stderr)
			if !ok {
				return exitFailed
			}
			targets = append(targets, b)
		}
	}
	rc := exitOK
	for _, b := range targets {
		if b.FirstParty() {
			fmt.Fprintf(stdout, "%s: first-party: built from this checkout when it first runs, its checksum recorded then\n", b.Name)
			continue
		}
		if write {
			sum, err := host.SHA256(b.Path)
			if err == nil {
				err = os.WriteFile(b.Path+host.ChecksumSuffix, []byte(sum+"  "+filepath.Base(b.Path)+"\n"), 0o644)
			}
			if err != nil {
				report(stderr, err)
				return exitFailed
			}
			fmt.Fprintf(stdout, "%s: approved: wrote %s%s (%s)\n", b.Name, b.Path, host.ChecksumSuffix, sum)
			continue
		}
		if err := b.Verify(); err != nil {
			fmt.Fprintf(stdout, "%s: %v\n", b.Name, err)
			rc = exitFailed
			continue
		}
		fmt.Fprintf(stdout, "%s: ok (%s)\n", b.Name, b.Checksum)
	}
	return rc
}

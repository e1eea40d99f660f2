package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/goselfsup/goselfsup/plugins/host"
	"github.com/goselfsup/goselfsup/registry"
)

const pluginUsage = `usage: goselfsup plugin list | describe NAME [--start] | verify [NAME ...] [--write]

Manages goselfsup plugins: programs named goselfsup-plugin-<name>, found in the folders of
$GOSELFSUP_PLUGIN_PATH, then ~/.config/goselfsup/plugins, then ./plugins (the first of a
name wins).

  list       the plugins found, their components, checksum state, and problems
  describe   a plugin's manifest; --start also starts it, asks it over gRPC and times that
  verify     compares each plugin (or those named) with its goselfsup-plugin-<name>_SHA256SUM
             file; --write writes those files from the binaries as they are now

flags:
`

// Plugin is the entry point of tools/plugin.
func Plugin(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("plugin", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(fs.Output(), pluginUsage); fs.PrintDefaults() }
	write := fs.Bool("write", false, "verify: write the checksum files instead of checking them")
	start := fs.Bool("start", false, "describe: start the plugin and ask it for its manifest over gRPC, timing it")
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
	h := host.New(host.Options{Log: consoleLogger(stderr)})
	defer h.Close()
	switch args[0] {
	case "list":
		return pluginList(h, stdout)
	case "describe":
		if len(pos) != 1 {
			fs.Usage()
			return exitUsage
		}
		return pluginDescribe(h, pos[0], *start, stdout, stderr)
	case "verify":
		return pluginVerify(h, pos, *write, stdout, stderr)
	}
	fs.Usage()
	return exitUsage
}

func pluginList(h *host.Host, stdout io.Writer) int {
	fmt.Fprintf(stdout, "searched: %s\n", strings.Join(host.DefaultDirs(), ", "))
	tw := tabwriter.NewWriter(stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "plugin\tversion\tchecksum\tcomponents\tpath")
	for _, b := range h.Binaries() {
		var comps []string
		for _, c := range b.Manifest.Components {
			comps = append(comps, c.Namespace+"."+c.Type)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", b.Name, b.Manifest.Version, checksumState(b), strings.Join(comps, ", "), b.Path)
		for _, s := range b.Shadowed {
			fmt.Fprintf(tw, "\t\t\t(shadowed)\t%s\n", s)
		}
	}
	tw.Flush()
	if _, err := h.Extend(registry.Default); err != nil {
		fmt.Fprintf(stdout, "not usable: %v\n", err)
	}
	for _, p := range h.Problems {
		fmt.Fprintf(stdout, "problem: %v\n", p)
	}
	if len(h.Binaries()) == 0 {
		fmt.Fprintln(stdout, "no plugins found")
	}
	return exitOK
}

func checksumState(b *host.Binary) string {
	err := b.Verify()
	switch {
	case err == nil:
		return "verified"
	case errors.Is(err, host.ErrChecksum):
		return "MISMATCH"
	case b.Checksum == "":
		return "none"
	}
	return "unreadable"
}

func pluginDescribe(h *host.Host, name string, start bool, stdout, stderr io.Writer) int {
	b, ok := h.Binary(name)
	if !ok {
		report(stderr, fmt.Errorf("no plugin %q (see `plugin list`)", name))
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
	targets := h.Binaries()
	if len(names) > 0 {
		targets = nil
		for _, n := range names {
			b, ok := h.Binary(n)
			if !ok {
				report(stderr, fmt.Errorf("no plugin %q (see `plugin list`)", n))
				return exitFailed
			}
			targets = append(targets, b)
		}
	}
	rc := exitOK
	for _, b := range targets {
		if write {
			sum, err := host.SHA256(b.Path)
			if err == nil {
				err = os.WriteFile(b.Path+host.ChecksumSuffix, []byte(sum+"  "+b.Name+"\n"), 0o644)
			}
			if err != nil {
				report(stderr, err)
				return exitFailed
			}
			fmt.Fprintf(stdout, "%s: wrote %s%s (%s)\n", b.Name, b.Path, host.ChecksumSuffix, sum)
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

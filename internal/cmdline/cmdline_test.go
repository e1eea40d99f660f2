package cmdline

import (
	"flag"
	"fmt"
	"slices"
	"strings"
	"testing"
)

type list []string

func (l *list) String() string     { return strings.Join(*l, " ") }
func (l *list) Set(v string) error { *l = append(*l, v); return nil }

func newFlags(stderr *strings.Builder) (*flag.FlagSet, *list, *bool) {
	fs := flag.NewFlagSet("x", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var sets list
	fs.Var(&sets, "set", "override")
	fs.Var(&sets, CfgOptions, "alias")
	v := fs.Bool("v", false, "verbose")
	fs.Usage = func() { fmt.Fprintln(fs.Output(), "usage: x CONFIG [flags]"); fs.PrintDefaults() }
	return fs, &sets, v
}

func TestParse(t *testing.T) {
	for _, tc := range []struct {
		args      []string
		pos, sets []string
		v         bool
	}{
		{args: []string{"c.toml", "-v"}, pos: []string{"c.toml"}, v: true},
		{args: []string{"--set", "a=1", "c.toml", "--set=b=2"}, pos: []string{"c.toml"}, sets: []string{"a=1", "b=2"}},
		{args: []string{"--cfg-options", "a=1", "b=2", "c=x y", "c.toml"}, pos: []string{"c.toml"}, sets: []string{"a=1", "b=2", "c=x y"}},
		{args: []string{"c.toml", "--cfg-options", "a=1", "b=2", "-v", "--cfg-options", "d=4"}, pos: []string{"c.toml"}, sets: []string{"a=1", "b=2", "d=4"}, v: true},
		// --cfg-options=v takes one value, as in argparse; after "--" nothing is a flag.
		{args: []string{"--cfg-options=a=1", "b=2"}, pos: []string{"b=2"}, sets: []string{"a=1"}},
		{args: []string{"-cfg-options", "a=1", "--", "--cfg-options", "b=2"}, pos: []string{"--cfg-options", "b=2"}, sets: []string{"a=1"}},
	} {
		var stderr strings.Builder
		fs, sets, v := newFlags(&stderr)
		pos, err := Parse(fs, tc.args, &strings.Builder{})
		if err != nil || !slices.Equal(pos, tc.pos) || !slices.Equal(*sets, tc.sets) || *v != tc.v {
			t.Errorf("%q: positional %q, sets %q, -v %v, err %v; want %q, %q, %v", tc.args, pos, *sets, *v, err, tc.pos, tc.sets, tc.v)
		}
	}
}

func TestParseHelpAndErrors(t *testing.T) {
	for _, h := range []string{"-h", "-help", "--help"} {
		var stdout, stderr strings.Builder
		fs, _, _ := newFlags(&stderr)
		_, err := Parse(fs, []string{"c.toml", h}, &stdout)
		if ExitCode(err) != OK || !strings.HasPrefix(stdout.String(), "usage: x CONFIG [flags]\n") || stderr.Len() > 0 {
			t.Errorf("%s: exit %d, stdout %q, stderr %q", h, ExitCode(err), stdout.String(), stderr.String())
		}
		if !IsHelp(h) {
			t.Errorf("IsHelp(%q) is false", h)
		}
	}
	var stdout, stderr strings.Builder
	fs, _, _ := newFlags(&stderr)
	_, err := Parse(fs, []string{"--nope"}, &stdout)
	if ExitCode(err) != Usage || stdout.Len() > 0 || !strings.Contains(stderr.String(), "flag provided but not defined: -nope\nusage: x") {
		t.Errorf("a wrong flag: exit %d, stdout %q, stderr %q", ExitCode(err), stdout.String(), stderr.String())
	}
	// The output is restored for the caller's own usage errors.
	if fs.Output() != &stderr {
		t.Error("Parse left the flag set's output changed")
	}
}

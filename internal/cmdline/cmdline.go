// Package cmdline parses the command lines of goselfsup's subcommands the same way for the
// public cli package and the internal ones (the benchmark harness): flags before or after
// the positional arguments, -h/--help on stdout with exit code 0, and mmselfsup's
// --cfg-options, which takes several key=value pairs after one flag.
package cmdline

import (
	"bytes"
	"errors"
	"flag"
	"io"
	"strings"
)

// Exit codes of the commands.
const (
	OK     = 0
	Failed = 1 // the config, data or run failed
	Usage  = 2 // the command line is wrong
)

// CfgOptions is the name of the flag that takes several values after it, as argparse's
// nargs='+' does: "--cfg-options a=1 b=2" is "--cfg-options=a=1 --cfg-options=b=2".
const CfgOptions = "cfg-options"

// Parse parses flags that may come before or after the positional arguments, and returns
// the positional arguments. On -h or --help it writes fs's usage to stdout and returns
// flag.ErrHelp; on a wrong flag it writes the error and the usage to fs.Output(), as flag
// does. ExitCode gives the exit code of either. fs.Usage should write to fs.Output().
func Parse(fs *flag.FlagSet, args []string, stdout io.Writer) ([]string, error) {
	if fs.Lookup(CfgOptions) != nil {
		args = expandNargs(args, CfgOptions)
	}
	out := fs.Output()
	var buf bytes.Buffer
	fs.SetOutput(&buf)
	defer fs.SetOutput(out)
	var positional []string
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				out = stdout
			}
			out.Write(buf.Bytes())
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

// ExitCode is the exit code for an error of Parse: OK after -h, else Usage.
func ExitCode(err error) int {
	if errors.Is(err, flag.ErrHelp) {
		return OK
	}
	return Usage
}

// IsHelp reports whether arg asks for help: -h, -help, --h or --help, as flag treats them.
func IsHelp(arg string) bool {
	switch arg {
	case "-h", "-help", "--h", "--help":
		return true
	}
	return false
}

// expandNargs rewrites "--name v1 v2 ..." as "--name=v1 --name=v2 ...": after the first
// value, the arguments that contain '=' and do not start with '-' are values too. Arguments
// after "--" are left alone, as is "--name=v", which takes one value (as in argparse).
func expandNargs(args []string, name string) []string {
	out := make([]string, 0, len(args))
	for i := 0; i < len(args); i++ {
		a := args[i]
		if a == "--" {
			return append(out, args[i:]...)
		}
		if (a != "-"+name && a != "--"+name) || i+1 == len(args) {
			out = append(out, a)
			continue
		}
		i++
		out = append(out, "--"+name+"="+args[i])
		for i+1 < len(args) && strings.Contains(args[i+1], "=") && !strings.HasPrefix(args[i+1], "-") {
			i++
			out = append(out, "--"+name+"="+args[i])
		}
	}
	return out
}

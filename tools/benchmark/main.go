// Command benchmark times goselfsup against reference implementations, in one run.
// It is "goselfsup benchmark" (cmd/goselfsup): "go run ./tools/benchmark -h" lists its flags.
//
//	go run ./tools/benchmark train-step
package main

import (
	"os"

	"github.com/goselfsup/goselfsup/cli"
)

func main() { os.Exit(cli.Main(append([]string{"benchmark"}, os.Args[1:]...), os.Stdout, os.Stderr)) }

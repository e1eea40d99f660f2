// Command benchmark times goselfsup against reference implementations, in one run.
//
//	go run ./tools/benchmark train-step
package main

import (
	"os"

	"github.com/goselfsup/goselfsup/cli"
)

func main() { os.Exit(cli.Benchmark(os.Args[1:], os.Stdout, os.Stderr)) }

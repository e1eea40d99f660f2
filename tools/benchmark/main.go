// Command benchmark times goselfsup against reference implementations, in one run.
//
//	go run ./tools/benchmark train-step
package main

import (
	"os"

	"github.com/goselfsup/goselfsup/internal/benchmark"
)

func main() { os.Exit(benchmark.Main(os.Args[1:], os.Stdout, os.Stderr)) }

// Command evaluate runs a benchmark config's evaluator: kNN, SVM, or a plugin's.
// It is "goselfsup evaluate" (cmd/goselfsup): "go run ./tools/evaluate -h" lists its flags.
//
//	go run ./tools/evaluate my_logreg_benchmark.toml work_dirs/npid/epoch_200.ckpt
package main

import (
	"os"

	"github.com/goselfsup/goselfsup/cli"
)

func main() { os.Exit(cli.Main(append([]string{"evaluate"}, os.Args[1:]...), os.Stdout, os.Stderr)) }

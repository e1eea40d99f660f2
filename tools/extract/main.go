// Command extract writes a model's features of a benchmark's datasets as NumPy files.
// It is "goselfsup extract" (cmd/goselfsup): "go run ./tools/extract -h" lists its flags.
//
//	go run ./tools/extract configs/benchmarks/classification/voc07/svm_voc07.toml work_dirs/npid/epoch_200.ckpt
package main

import (
	"os"

	"github.com/goselfsup/goselfsup/cli"
)

func main() { os.Exit(cli.Main(append([]string{"extract"}, os.Args[1:]...), os.Stdout, os.Stderr)) }

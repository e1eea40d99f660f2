// Command svm runs the VOC07 SVM benchmark (and its low-shot runs) on a model's features.
// It is "goselfsup svm" (cmd/goselfsup): "go run ./tools/svm -h" lists its flags.
//
//	go run ./tools/svm configs/benchmarks/classification/voc07/svm_voc07.toml work_dirs/npid/epoch_200.ckpt
package main

import (
	"os"

	"github.com/goselfsup/goselfsup/cli"
)

func main() { os.Exit(cli.Main(append([]string{"svm"}, os.Args[1:]...), os.Stdout, os.Stderr)) }

// Command svm runs the VOC07 SVM benchmark (and its low-shot runs) on a model's features.
//
//	go run ./tools/svm configs/benchmarks/classification/voc07/svm_voc07.toml work_dirs/npid/epoch_200.ckpt
package main

import (
	"os"

	"github.com/goselfsup/goselfsup/cli"
)

func main() { os.Exit(cli.SVM(os.Args[1:], os.Stdout, os.Stderr)) }

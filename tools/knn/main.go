// Command knn runs the weighted kNN benchmark on a model's features.
// It is "goselfsup knn" (cmd/goselfsup): "go run ./tools/knn -h" lists its flags.
//
//	go run ./tools/knn configs/benchmarks/classification/knn_imagenet.toml work_dirs/npid/epoch_200.ckpt
//	go run ./tools/knn configs/benchmarks/classification/knn_imagenet.toml work_dirs/npid/epoch_200.ckpt --memory-bank
package main

import (
	"os"

	"github.com/goselfsup/goselfsup/cli"
)

func main() { os.Exit(cli.Main(append([]string{"knn"}, os.Args[1:]...), os.Stdout, os.Stderr)) }

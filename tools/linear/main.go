// Command linear trains a linear classifier on a frozen self-supervised backbone.
// It is "goselfsup linear" (cmd/goselfsup): "go run ./tools/linear -h" lists its flags.
//
//	go run ./tools/linear configs/benchmarks/classification/imagenet/resnet50_linear-8xb32-steplr-100e_in1k.toml work_dirs/npid/epoch_200.ckpt
package main

import (
	"os"

	"github.com/goselfsup/goselfsup/cli"
)

func main() { os.Exit(cli.Main(append([]string{"linear"}, os.Args[1:]...), os.Stdout, os.Stderr)) }

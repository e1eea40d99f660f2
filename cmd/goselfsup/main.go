// Command goselfsup is goselfsup's one binary: train, print_config, extract, knn, svm,
// linear, evaluate, plugin and benchmark are its commands (tools/* run the same ones).
//
//	go run ./cmd/goselfsup help
//	go run ./cmd/goselfsup train configs/npid/resnet50_8xb32-steplr-200e.toml --cfg-options env_cfg.num_devices=1
//	go install github.com/goselfsup/goselfsup/cmd/goselfsup@latest
//
// A build with one's own components is this main with their packages imported (see the
// package doc of cli).
package main

import (
	"os"

	"github.com/goselfsup/goselfsup/cli"
)

func main() { os.Exit(cli.Main(os.Args[1:], os.Stdout, os.Stderr)) }

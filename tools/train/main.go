// Command train trains a model from a config; without one, it runs the CPU demo.
//
//	go run ./tools/train
//	go run ./tools/train configs/npid/resnet50_8xb32-steplr-200e.toml --work-dir runs/r50
package main

import (
	"os"

	"github.com/goselfsup/goselfsup/cli"
)

func main() { os.Exit(cli.Train(os.Args[1:], os.Stdout, os.Stderr)) }

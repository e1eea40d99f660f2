// Command train trains a model from a config; without one, it runs the CPU demo.
// It is "goselfsup train" (cmd/goselfsup): "go run ./tools/train -h" lists its flags.
//
//	go run ./tools/train
//	go run ./tools/train configs/npid/resnet50_8xb32-steplr-200e.toml --work-dir runs/r50
package main

import (
	"os"

	"github.com/goselfsup/goselfsup/cli"
)

func main() { os.Exit(cli.Main(append([]string{"train"}, os.Args[1:]...), os.Stdout, os.Stderr)) }

// Command goselfsup-plugin-seg is goselfsup's segmentation benchmark as a plugin process:
// MMSegBenchmark (package plugins/segbench). goselfsup builds it from the checkout the first
// time a config names MMSegBenchmark (`go run ./tools/evaluate CONFIG CKPT`); to install it
// elsewhere:
//
//	go build -o ~/.config/goselfsup/plugins/goselfsup-plugin-seg ./cmd/goselfsup-plugin-seg
//	go run ./tools/plugin verify --write seg
package main

import (
	"github.com/goselfsup/goselfsup/plugins/sdk"
	"github.com/goselfsup/goselfsup/plugins/segbench"
)

func main() { sdk.Serve(segbench.Plugin()) }

// Command goselfsup-plugin-det is goselfsup's detection benchmark as a plugin process:
// MMDetBenchmark (package plugins/detbench). goselfsup builds it from the checkout the first
// time a config names MMDetBenchmark (`go run ./tools/evaluate CONFIG CKPT`); to install it
// elsewhere:
//
//	go build -o ~/.config/goselfsup/plugins/goselfsup-plugin-det ./cmd/goselfsup-plugin-det
//	go run ./tools/plugin verify --write det
package main

import (
	"github.com/goselfsup/goselfsup/plugins/detbench"
	"github.com/goselfsup/goselfsup/plugins/sdk"
)

func main() { sdk.Serve(detbench.Plugin()) }

// Command print_config prints a merged config as TOML and checks it against the registry.
// It is "goselfsup print_config" (cmd/goselfsup): "go run ./tools/print_config -h" lists its flags.
//
//	go run ./tools/print_config configs/npid/resnet50_8xb32-steplr-200e.toml
//	go run ./tools/print_config CONFIG --set model.head.temperature=0.1 --explain model.head.temperature
package main

import (
	"os"

	"github.com/goselfsup/goselfsup/cli"
)

func main() {
	os.Exit(cli.Main(append([]string{"print_config"}, os.Args[1:]...), os.Stdout, os.Stderr))
}

// Command print_config prints a merged config as TOML and checks it against the registry.
//
//	go run ./tools/print_config configs/npid/resnet50_8xb32-steplr-200e.toml
//	go run ./tools/print_config CONFIG --set model.head.temperature=0.1 --explain model.head.temperature
package main

import (
	"os"

	"github.com/goselfsup/goselfsup/cli"
)

func main() { os.Exit(cli.PrintConfig(os.Args[1:], os.Stdout, os.Stderr)) }

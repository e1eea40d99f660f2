// Command plugin lists, describes and verifies the installed goselfsup plugins.
//
//	go run ./tools/plugin list
//	go run ./tools/plugin describe logreg --start
//	go run ./tools/plugin verify --write logreg
package main

import (
	"os"

	"github.com/goselfsup/goselfsup/cli"
)

func main() { os.Exit(cli.Plugin(os.Args[1:], os.Stdout, os.Stderr)) }

// Command plugin lists, describes and verifies the installed goselfsup plugins.
// It is "goselfsup plugin" (cmd/goselfsup): "go run ./tools/plugin -h" lists its flags.
//
//	go run ./tools/plugin list
//	go run ./tools/plugin describe logreg --start
//	go run ./tools/plugin verify --write logreg
package main

import (
	"os"

	"github.com/goselfsup/goselfsup/cli"
)

func main() { os.Exit(cli.Main(append([]string{"plugin"}, os.Args[1:]...), os.Stdout, os.Stderr)) }

// Command plugin lists, describes and verifies the goselfsup plugins, and approves them
// (verify --write: goselfsup runs a plugin only once its checksum file matches). It finds
// them in the folders of --plugin-dir, $GOSELFSUP_PLUGIN_PATH and ~/.config/goselfsup/plugins,
// and needs no particular working directory:
//
//	go run ./tools/plugin list
//	go run ./tools/plugin verify --write logreg
//	go run ./tools/plugin describe logreg --start
//	go build -o ~/bin/goselfsup-plugins ./tools/plugin  # then, from anywhere: goselfsup-plugins list
package main

import (
	"os"

	"github.com/goselfsup/goselfsup/cli"
)

func main() { os.Exit(cli.Main(append([]string{"plugin"}, os.Args[1:]...), os.Stdout, os.Stderr)) }

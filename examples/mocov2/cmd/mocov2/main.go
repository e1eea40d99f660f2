// Command mocov2 is goselfsup's tools with the MoCo v2 example linked in: its package
// registers algorithms.MoCoV2, necks.MoCoV2Neck, optimizers.AdamW, param_schedulers.PolyLR,
// hooks.MomentumScheduleHook and evaluators.NearestCentroid, which configs then name.
//
//	go run ./examples/mocov2/cmd/mocov2 train examples/mocov2/configs/mocov2_shapes.toml
//	go run ./examples/mocov2/cmd/mocov2 evaluate examples/mocov2/configs/nearest_centroid_shapes.toml CHECKPOINT
package main

import (
	"fmt"
	"io"
	"os"

	"github.com/goselfsup/goselfsup/cli"

	_ "github.com/goselfsup/goselfsup/examples/mocov2" // registers the example's components
)

// commands are the subcommands of this build: goselfsup's own entry points. Once cli.Main
// (one entry point for every command) is on this branch, main becomes
//
//	os.Exit(cli.Main(os.Args[1:], os.Stdout, os.Stderr))
var commands = map[string]func(args []string, stdout, stderr io.Writer) int{
	"train":        cli.Train,
	"evaluate":     cli.Evaluate,
	"knn":          cli.KNN,
	"extract":      cli.Extract,
	"print_config": cli.PrintConfig,
}

func main() {
	if len(os.Args) < 2 || commands[os.Args[1]] == nil {
		fmt.Fprintln(os.Stderr, "usage: mocov2 train|evaluate|knn|extract|print_config ARGS...")
		os.Exit(2)
	}
	os.Exit(commands[os.Args[1]](os.Args[2:], os.Stdout, os.Stderr))
}

// Command mocov2 is goselfsup with the MoCo v2 example linked in: its package registers
// algorithms.MoCoV2, necks.MoCoV2Neck, optimizers.AdamW, hooks.MomentumScheduleHook and
// evaluators.NearestCentroid, which configs then name. Every goselfsup command is here
// (train, evaluate, knn, print_config --describe AdamW, ...).
//
//	go run ./examples/mocov2/cmd/mocov2 train examples/mocov2/configs/mocov2_shapes.toml
//	go run ./examples/mocov2/cmd/mocov2 evaluate examples/mocov2/configs/nearest_centroid_shapes.toml CHECKPOINT
package main

import (
	"os"

	"github.com/goselfsup/goselfsup/cli"

	_ "github.com/goselfsup/goselfsup/examples/mocov2" // registers the example's components
)

func main() { os.Exit(cli.Main(os.Args[1:], os.Stdout, os.Stderr)) }

// Package configs embeds the configs that ship with goselfsup, so that every binary finds
// them, inside the repository or not: "goselfsup::npid/resnet50_8xb32-steplr-200e.toml", or
// "configs/npid/..." when no such file is on disk.
package configs

import "embed"

// FS holds the shipped configs, at paths relative to this folder.
//
//go:embed all:_base_ all:npid all:benchmarks all:demo
var FS embed.FS

//go:build !noxla && cgo && (linux || darwin)

package backend

import _ "github.com/gomlx/gomlx/backends/xla" // registers "xla"

const xlaCompiledIn = true

//go:build noxla || !cgo || !(linux || darwin)

package backend

const xlaCompiledIn = false

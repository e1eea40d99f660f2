package evaluators

import "golang.org/x/sys/cpu"

var hasFMA = cpu.X86.HasAVX2 && cpu.X86.HasFMA

// tileFMA computes a 6 x 16 tile of inner products (see tile) with AVX2 and FMA.
//
//go:noescape
func tileFMA(c *float32, ldc int, a, b *float32, dim int)

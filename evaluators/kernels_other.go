//go:build !amd64

package evaluators

const hasFMA = false

func tileFMA(c *float32, ldc int, a, b *float32, dim int) {
	panic("no FMA kernel on this architecture")
}

package datasets

import "golang.org/x/sys/cpu"

var hasAVX2 = cpu.X86.HasAVX2

// rowsAVX2 computes out[3x:3x+4] for the first n output pixels x of a row (the fourth byte
// is the next pixel's red, which its own computation overwrites).
//
//go:noescape
func rowsAVX2(dst *uint8, n int, row *uint8, start, count *int, weights *int32, size int)

// columnsAVX2 computes the n values (a multiple of 8) of an output row from taps source
// rows stride bytes apart, the first at src.
//
//go:noescape
func columnsAVX2(dst *uint8, n int, src *uint8, stride int, weights *int32, taps int)

// blendAVX2 blends n values (a multiple of 8) of pix with gray by a, as blendValue does.
//
//go:noescape
func blendAVX2(pix, gray *uint8, n int, a float32)

// blendWithAVX2 blends the leading multiple of 8 values and returns how many.
func blendWithAVX2(pix, gray []uint8, a float32) int {
	n := min(len(pix), len(gray)) &^ 7
	if n > 0 {
		blendAVX2(&pix[0], &gray[0], n, a)
	}
	return n
}

// blendLevelAVX2 blends n values (a multiple of 8) of pix with the level by a, as
// blendValue does.
//
//go:noescape
func blendLevelAVX2(pix *uint8, n int, level, a float32)

// blendLevelWithAVX2 blends the leading multiple of 8 values and returns how many.
func blendLevelWithAVX2(pix []uint8, level, a float32) int {
	n := len(pix) &^ 7
	if n > 0 {
		blendLevelAVX2(&pix[0], n, level, a)
	}
	return n
}

// hueAVX2 shifts the hue of n pixels (a multiple of 4), as adjustHue does; it reads 4
// bytes past the last of them.
//
//go:noescape
func hueAVX2(pix *uint8, n int, shift int32)

// hueWithAVX2 shifts the hue of the leading pixels, four at a time, and returns how many
// bytes it did.
func hueWithAVX2(pix []uint8, shift uint8) int {
	n := (len(pix)/3 - 2) &^ 3 // the kernel reads 16 bytes for 12
	if n <= 0 {
		return 0
	}
	hueAVX2(&pix[0], n, int32(shift))
	return 3 * n
}

// resampleRowAVX2 computes the leading output pixels of a row, rest being the source row
// and what follows it in memory, and returns how many it computed: not the last one, whose
// fourth byte would fall outside the row, nor one whose last tap is the last pixel of
// rest, whose fourth byte the kernel cannot read.
func resampleRowAVX2(dst, rest []uint8, c coefficients) int {
	n := len(dst)/3 - 1
	for n > 0 && (c.start[n-1]+c.count[n-1])*3 >= len(rest) {
		n--
	}
	if n <= 0 {
		return 0
	}
	rowsAVX2(&dst[0], n, &rest[0], &c.start[0], &c.count[0], &c.weights[0], c.size)
	return n
}

// resampleColumnAVX2 computes output row y's values in multiples of 8 and returns how many.
func resampleColumnAVX2(dst []uint8, src view, c coefficients, y int) int {
	n := len(dst) &^ 7
	taps := c.count[y]
	if n == 0 || taps == 0 {
		return 0
	}
	first := src.off + c.start[y]*src.stride
	if first+(taps-1)*src.stride+n > len(src.pix) {
		return 0 // cannot happen for a valid view; the Go code will say so
	}
	columnsAVX2(&dst[0], n, &src.pix[first], src.stride, &c.weights[y*c.size], taps)
	return n
}

package datasets

// The two passes of Pillow's resampling (see Image.ResizeRegion), in Go, and dispatched to
// the AVX2 kernels of kernels_amd64.s where the CPU has them: those compute the same
// integers (32-bit products and sums, an arithmetic shift, clipping to 0-255), eight values
// or one pixel at a time.

// view is a w x h region of an image: its row y is pix[off+y*stride:][:w*3].
type view struct {
	pix               []uint8
	off, stride, w, h int
}

func (v view) row(y int) []uint8 {
	s := v.off + y*v.stride
	return v.pix[s : s+v.w*3]
}

// rest is the image's bytes from the start of row y on: the row and the rows after it.
func (v view) rest(y int) []uint8 { return v.pix[v.off+y*v.stride:] }

const half = 1 << (precisionBits - 1)

// resampleRows is the horizontal pass: each row of src to a row of out.
func resampleRows(out Image, src view, c coefficients) {
	w := out.Width
	for y := 0; y < src.h; y++ {
		dst := out.Pix[y*w*3 : (y+1)*w*3]
		x := 0
		if hasAVX2 {
			x = resampleRowAVX2(dst, src.rest(y), c)
		}
		resampleRowGo(dst, src.row(y), c, x)
	}
}

// resampleRowGo computes the output pixels from x0 on of one row.
func resampleRowGo(dst, row []uint8, c coefficients, x0 int) {
	w := len(dst) / 3
	if c.nonNegative {
		// Red and blue are summed in the two 32-bit halves of one uint64, which no sum
		// overflows (255 times weights that add up to about 2^22): two multiplications a
		// tap instead of three, the same results.
		for x := x0; x < w; x++ {
			k := c.weights[x*c.size : x*c.size+c.count[x]]
			s := row[c.start[x]*3:]
			s = s[:len(k)*3]
			rb, g := uint64(half)|uint64(half)<<32, uint64(half)
			for j, wt := range k {
				p := s[3*j : 3*j+3 : 3*j+3]
				rb += (uint64(p[0]) | uint64(p[2])<<32) * uint64(uint32(wt))
				g += uint64(p[1]) * uint64(uint32(wt))
			}
			d := dst[3*x : 3*x+3 : 3*x+3]
			d[0], d[1], d[2] = fixedToByte(int32(uint32(rb))), fixedToByte(int32(g)), fixedToByte(int32(rb>>32))
		}
		return
	}
	for x := x0; x < w; x++ {
		k := c.weights[x*c.size : x*c.size+c.count[x]]
		s := row[c.start[x]*3:]
		s = s[:len(k)*3]
		r, g, b := int32(half), int32(half), int32(half)
		for j, wt := range k {
			p := s[3*j : 3*j+3 : 3*j+3]
			r += int32(p[0]) * wt
			g += int32(p[1]) * wt
			b += int32(p[2]) * wt
		}
		d := dst[3*x : 3*x+3 : 3*x+3]
		d[0], d[1], d[2] = fixedToByte(r), fixedToByte(g), fixedToByte(b)
	}
}

// resampleColumns is the vertical pass: each row of out from rows of src.
func resampleColumns(out Image, src view, c coefficients) {
	stride := out.Width * 3
	acc := make([]int32, stride)
	for y := 0; y < out.Height; y++ {
		dst := out.Pix[y*stride : (y+1)*stride]
		i := 0
		if hasAVX2 {
			i = resampleColumnAVX2(dst, src, c, y)
		}
		resampleColumnGo(dst, src, c, y, i, acc)
	}
}

// resampleColumnGo computes output row y's values from i0 on; acc is scratch space of the
// row's length.
func resampleColumnGo(dst []uint8, src view, c coefficients, y, i0 int, acc []int32) {
	acc = acc[i0:len(dst)]
	for i := range acc {
		acc[i] = half
	}
	for j, wt := range c.weights[y*c.size : y*c.size+c.count[y]] {
		row := src.row(c.start[y] + j)[i0:]
		row = row[:len(acc)]
		for i, v := range row {
			acc[i] += int32(v) * wt
		}
	}
	dst = dst[i0:]
	dst = dst[:len(acc)]
	for i, v := range acc {
		dst[i] = fixedToByte(v)
	}
}

package datasets

import (
	"fmt"
	"math"
	"slices"
)

// Image is an 8-bit RGB image, rows top to bottom, pixels R, G, B.
type Image struct {
	Width, Height int
	Pix           []uint8 // len = Width * Height * 3
}

// NewImage returns a black image.
func NewImage(w, h int) Image { return Image{Width: w, Height: h, Pix: make([]uint8, w*h*3)} }

// Clone returns a copy.
func (m Image) Clone() Image {
	return Image{Width: m.Width, Height: m.Height, Pix: append([]uint8(nil), m.Pix...)}
}

// Crop returns the w x h region at (x0, y0), which must lie inside the image.
func (m Image) Crop(x0, y0, w, h int) Image {
	out := newImage(w, h)
	for y := 0; y < h; y++ {
		src := ((y0+y)*m.Width + x0) * 3
		copy(out.Pix[y*w*3:(y+1)*w*3], m.Pix[src:src+w*3])
	}
	return out
}

// FlipH mirrors left and right.
func (m Image) FlipH() Image {
	out := newImage(m.Width, m.Height)
	n := m.Width * 3
	for y := 0; y < m.Height; y++ {
		src, dst := m.Pix[y*n:(y+1)*n], out.Pix[y*n:(y+1)*n]
		for len(src) >= 3 && len(dst) >= 3 {
			d := dst[len(dst)-3:]
			d[0], d[1], d[2] = src[0], src[1], src[2]
			src, dst = src[3:], dst[:len(dst)-3]
		}
	}
	return out
}

// flipHInPlace mirrors left and right in place.
func (m Image) flipHInPlace() {
	n := m.Width * 3
	for y := 0; y < m.Height; y++ {
		row := m.Pix[y*n : (y+1)*n]
		for l, r := 0, n-3; l < r; l, r = l+3, r-3 {
			a, b := row[l:l+3:l+3], row[r:r+3:r+3]
			a[0], a[1], a[2], b[0], b[1], b[2] = b[0], b[1], b[2], a[0], a[1], a[2]
		}
	}
}

// flipVInPlace mirrors top and bottom in place.
func (m Image) flipVInPlace() {
	n := m.Width * 3
	for t, b := 0, m.Height-1; t < b; t, b = t+1, b-1 {
		top, bottom := m.Pix[t*n:(t+1)*n], m.Pix[b*n:(b+1)*n]
		for i := range top {
			top[i], bottom[i] = bottom[i], top[i]
		}
	}
}

// FlipV mirrors top and bottom.
func (m Image) FlipV() Image {
	out := newImage(m.Width, m.Height)
	row := m.Width * 3
	for y := 0; y < m.Height; y++ {
		copy(out.Pix[(m.Height-1-y)*row:(m.Height-y)*row], m.Pix[y*row:(y+1)*row])
	}
	return out
}

// Interpolation is a resampling filter, named as in mmcv.
type Interpolation string

const (
	Nearest  Interpolation = "nearest"
	Bilinear Interpolation = "bilinear"
	Bicubic  Interpolation = "bicubic"
	Box      Interpolation = "area"
	Lanczos  Interpolation = "lanczos"
)

// filter is a resampling kernel with its support (radius) at scale 1.
type filter struct {
	support float64
	f       func(x float64) float64
}

var filters = map[Interpolation]filter{
	Bilinear: {1, func(x float64) float64 {
		x = math.Abs(x)
		if x < 1 {
			return 1 - x
		}
		return 0
	}},
	Bicubic: {2, func(x float64) float64 { // Pillow's a = -0.5
		const a = -0.5
		x = math.Abs(x)
		switch {
		case x < 1:
			return ((a+2)*x-(a+3))*x*x + 1
		case x < 2:
			return (((x-5)*x+8)*x - 4) * a
		}
		return 0
	}},
	Box: {0.5, func(x float64) float64 {
		if x > -0.5 && x <= 0.5 {
			return 1
		}
		return 0
	}},
	Lanczos: {3, func(x float64) float64 {
		sinc := func(x float64) float64 {
			if x == 0 {
				return 1
			}
			x *= math.Pi
			return math.Sin(x) / x
		}
		if x >= -3 && x < 3 {
			return sinc(x) * sinc(x/3)
		}
		return 0
	}},
}

// The resampling below is Pillow's (Resample.c, 8 bits per channel): per output position,
// the filter's weights over the input taps, widened by the scale when shrinking (which
// antialiases), normalised, turned into fixed point with 22 fraction bits, accumulated in
// integers from a half, and clipped; a horizontal pass, then a vertical one.

const precisionBits = 32 - 8 - 2

// coefficients holds a pass's weights: for output i, weights[i*size:] over the inputs from
// start[i] on.
type coefficients struct {
	size        int
	nonNegative bool // no weight is negative
	start       []int
	count       []int
	weights     []int32
}

func resampleCoefficients(in, out int, f filter) coefficients {
	scale := float64(in) / float64(out)
	filterScale := math.Max(scale, 1)
	support := f.support * filterScale
	size := int(math.Ceil(support))*2 + 1
	c := coefficients{size: size, start: make([]int, out), count: make([]int, out), weights: make([]int32, out*size)}
	k := make([]float64, size)
	for i := 0; i < out; i++ {
		center := (float64(i) + 0.5) * scale
		ss := 1 / filterScale
		lo := int(center - support + 0.5) // truncation, as C's (int)
		if lo < 0 {
			lo = 0
		}
		hi := int(center + support + 0.5)
		if hi > in {
			hi = in
		}
		n := hi - lo
		var ww float64
		for x := 0; x < n; x++ {
			k[x] = f.f((float64(x+lo) - center + 0.5) * ss)
			ww += k[x]
		}
		for x := 0; x < n; x++ {
			if ww != 0 {
				k[x] /= ww
			}
			w := k[x] * (1 << precisionBits)
			if w < 0 {
				c.weights[i*size+x] = int32(-0.5 + w)
			} else {
				c.weights[i*size+x] = int32(0.5 + w)
			}
		}
		c.start[i], c.count[i] = lo, n
	}
	c.nonNegative = !slices.ContainsFunc(c.weights, func(w int32) bool { return w < 0 })
	return c
}

// fixedToByte takes a fixed-point accumulator back to 8 bits.
func fixedToByte(v int32) uint8 {
	v >>= precisionBits
	switch {
	case v < 0:
		return 0
	case v > 255:
		return 255
	}
	return uint8(v)
}

// Resize resamples to w x h with Pillow's algorithm and results.
func (m Image) Resize(w, h int, interp Interpolation) (Image, error) {
	return m.ResizeRegion(0, 0, m.Width, m.Height, w, h, interp)
}

// ResizeRegion resamples the cw x ch region at (x0, y0), which must lie inside the image, to
// w x h: Crop then Resize, without the copy.
func (m Image) ResizeRegion(x0, y0, cw, ch, w, h int, interp Interpolation) (Image, error) {
	if w < 1 || h < 1 {
		return Image{}, fmt.Errorf("resize to %dx%d", w, h)
	}
	if x0 < 0 || y0 < 0 || cw < 1 || ch < 1 || x0+cw > m.Width || y0+ch > m.Height {
		return Image{}, fmt.Errorf("the region %dx%d at (%d, %d) of a %dx%d image", cw, ch, x0, y0, m.Width, m.Height)
	}
	if w == cw && h == ch {
		return m.Crop(x0, y0, cw, ch), nil
	}
	if interp == Nearest {
		c := m.Crop(x0, y0, cw, ch)
		out := c.resizeNearest(w, h)
		putBuffer(c.Pix)
		return out, nil
	}
	f, ok := filters[interp]
	if !ok {
		return Image{}, fmt.Errorf("unknown interpolation %q", interp)
	}
	src := view{pix: m.Pix, off: (y0*m.Width + x0) * 3, stride: m.Width * 3, w: cw, h: ch}
	if w != cw {
		tmp := newImage(w, ch)
		resampleRows(tmp, src, resampleCoefficients(cw, w, f))
		if h == ch {
			return tmp, nil
		}
		out := newImage(w, h)
		resampleColumns(out, view{pix: tmp.Pix, stride: w * 3, w: w, h: ch}, resampleCoefficients(ch, h, f))
		putBuffer(tmp.Pix)
		return out, nil
	}
	out := newImage(w, h)
	resampleColumns(out, src, resampleCoefficients(ch, h, f))
	return out, nil
}

// resizeNearest is Pillow's nearest-neighbour resize (an affine transform): the source
// position of each output pixel advances by the scale, summed from half a step, as Pillow
// sums it.
func (m Image) resizeNearest(w, h int) Image {
	out := newImage(w, h)
	xs := make([]int, w)
	sx := float64(m.Width) / float64(w)
	xo := sx * 0.5
	for x := range xs {
		xs[x] = min(int(xo), m.Width-1)
		xo += sx
	}
	sy := float64(m.Height) / float64(h)
	yo := sy * 0.5
	for y := 0; y < h; y++ {
		src := min(int(yo), m.Height-1) * m.Width * 3
		yo += sy
		row := out.Pix[y*w*3:]
		for x, sx := range xs {
			copy(row[3*x:3*x+3], m.Pix[src+3*sx:src+3*sx+3])
		}
	}
	return out
}

// Gray returns the luma of each pixel, L = R*299/1000 + G*587/1000 + B*114/1000 as Pillow's
// convert("L") computes it.
func (m Image) Gray() []uint8 {
	out := make([]uint8, m.Width*m.Height)
	for i := range out {
		p := m.Pix[i*3 : i*3+3 : i*3+3]
		out[i] = luma(p[0], p[1], p[2])
	}
	return out
}

// luma is Pillow's L of an RGB pixel.
func luma(r, g, b uint8) uint8 {
	return uint8((uint32(r)*19595 + uint32(g)*38470 + uint32(b)*7471 + 0x8000) >> 16)
}

// clampByte rounds v to the nearest byte value, clipped to [0, 255].
func clampByte(v float64) uint8 {
	switch {
	case v <= 0:
		return 0
	case v >= 255:
		return 255
	}
	return uint8(v + 0.5)
}

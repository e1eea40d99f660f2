package datasets

import (
	"fmt"
	"image"
	"math"
)

// Image is an 8-bit RGB image, rows top to bottom, pixels R, G, B.
type Image struct {
	Width, Height int
	Pix           []uint8 // len = Width * Height * 3
}

// NewImage returns a black image.
func NewImage(w, h int) Image { return Image{Width: w, Height: h, Pix: make([]uint8, w*h*3)} }

// FromStd converts a decoded image.
func FromStd(src image.Image) Image {
	b := src.Bounds()
	m := NewImage(b.Dx(), b.Dy())
	i := 0
	for y := b.Min.Y; y < b.Max.Y; y++ {
		for x := b.Min.X; x < b.Max.X; x++ {
			r, g, bl, _ := src.At(x, y).RGBA()
			m.Pix[i], m.Pix[i+1], m.Pix[i+2] = uint8(r>>8), uint8(g>>8), uint8(bl>>8)
			i += 3
		}
	}
	return m
}

// Clone returns a copy.
func (m Image) Clone() Image {
	return Image{Width: m.Width, Height: m.Height, Pix: append([]uint8(nil), m.Pix...)}
}

// Crop returns the w x h region at (x0, y0), which must lie inside the image.
func (m Image) Crop(x0, y0, w, h int) Image {
	out := NewImage(w, h)
	for y := 0; y < h; y++ {
		src := ((y0+y)*m.Width + x0) * 3
		copy(out.Pix[y*w*3:(y+1)*w*3], m.Pix[src:src+w*3])
	}
	return out
}

// FlipH mirrors left and right.
func (m Image) FlipH() Image {
	out := NewImage(m.Width, m.Height)
	for y := 0; y < m.Height; y++ {
		for x := 0; x < m.Width; x++ {
			s, d := (y*m.Width+x)*3, (y*m.Width+m.Width-1-x)*3
			copy(out.Pix[d:d+3], m.Pix[s:s+3])
		}
	}
	return out
}

// FlipV mirrors top and bottom.
func (m Image) FlipV() Image {
	out := NewImage(m.Width, m.Height)
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
		if x > -3 && x < 3 {
			return sinc(x) * sinc(x/3)
		}
		return 0
	}},
}

// coefficients are the taps of one output position of a separable resampling pass.
type coefficients struct {
	start   int
	weights []float64
}

// resampleCoefficients follows Pillow's ImagingResample: when shrinking, the filter widens
// by the scale, which antialiases.
func resampleCoefficients(in, out int, f filter) []coefficients {
	scale := float64(in) / float64(out)
	filterScale := math.Max(scale, 1)
	support := f.support * filterScale
	cs := make([]coefficients, out)
	for i := range cs {
		center := (float64(i) + 0.5) * scale
		lo := max(int(center-support+0.5), 0)
		hi := min(int(center+support+0.5), in)
		w := make([]float64, hi-lo)
		var sum float64
		for j := range w {
			w[j] = f.f((float64(j+lo) - center + 0.5) / filterScale)
			sum += w[j]
		}
		if sum != 0 {
			for j := range w {
				w[j] /= sum
			}
		}
		cs[i] = coefficients{start: lo, weights: w}
	}
	return cs
}

func clampByte(v float64) uint8 {
	switch {
	case v <= 0:
		return 0
	case v >= 255:
		return 255
	}
	return uint8(v + 0.5)
}

// Resize resamples to w x h with Pillow's algorithm: a horizontal then a vertical pass,
// rounded to 8 bits in between.
func (m Image) Resize(w, h int, interp Interpolation) (Image, error) {
	if w < 1 || h < 1 {
		return Image{}, fmt.Errorf("resize to %dx%d", w, h)
	}
	if w == m.Width && h == m.Height {
		return m.Clone(), nil
	}
	if interp == Nearest {
		return m.resizeNearest(w, h), nil
	}
	f, ok := filters[interp]
	if !ok {
		return Image{}, fmt.Errorf("unknown interpolation %q", interp)
	}
	tmp := m
	if w != m.Width {
		tmp = NewImage(w, m.Height)
		cs := resampleCoefficients(m.Width, w, f)
		for y := 0; y < m.Height; y++ {
			row := m.Pix[y*m.Width*3:]
			for x, c := range cs {
				var r, g, b float64
				for j, wt := range c.weights {
					p := (c.start + j) * 3
					r += wt * float64(row[p])
					g += wt * float64(row[p+1])
					b += wt * float64(row[p+2])
				}
				o := (y*w + x) * 3
				tmp.Pix[o], tmp.Pix[o+1], tmp.Pix[o+2] = clampByte(r), clampByte(g), clampByte(b)
			}
		}
	}
	if h == tmp.Height {
		return tmp, nil
	}
	out := NewImage(w, h)
	cs := resampleCoefficients(tmp.Height, h, f)
	for y, c := range cs {
		for x := 0; x < w; x++ {
			var r, g, b float64
			for j, wt := range c.weights {
				p := ((c.start+j)*w + x) * 3
				r += wt * float64(tmp.Pix[p])
				g += wt * float64(tmp.Pix[p+1])
				b += wt * float64(tmp.Pix[p+2])
			}
			o := (y*w + x) * 3
			out.Pix[o], out.Pix[o+1], out.Pix[o+2] = clampByte(r), clampByte(g), clampByte(b)
		}
	}
	return out, nil
}

func (m Image) resizeNearest(w, h int) Image {
	out := NewImage(w, h)
	for y := 0; y < h; y++ {
		sy := min(int((float64(y)+0.5)*float64(m.Height)/float64(h)), m.Height-1)
		for x := 0; x < w; x++ {
			sx := min(int((float64(x)+0.5)*float64(m.Width)/float64(w)), m.Width-1)
			copy(out.Pix[(y*w+x)*3:(y*w+x)*3+3], m.Pix[(sy*m.Width+sx)*3:(sy*m.Width+sx)*3+3])
		}
	}
	return out
}

// Gray returns the luma of each pixel, L = R*299/1000 + G*587/1000 + B*114/1000 as Pillow's
// convert("L") computes it.
func (m Image) Gray() []uint8 {
	out := make([]uint8, m.Width*m.Height)
	for i := range out {
		p := m.Pix[i*3:]
		out[i] = uint8((uint32(p[0])*19595 + uint32(p[1])*38470 + uint32(p[2])*7471 + 0x8000) >> 16)
	}
	return out
}

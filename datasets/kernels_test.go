package datasets

import (
	"bytes"
	"math"
	"math/rand/v2"
	"testing"
)

// The AVX2 kernels compute what the Go passes compute, for every filter, shrinking and
// enlarging, on regions that touch the ends of the image's buffer.
func TestResampleKernelsMatchGo(t *testing.T) {
	if !hasAVX2 {
		t.Skip("no AVX2 here")
	}
	rng := rand.New(rand.NewPCG(5, 6))
	for trial := range 300 {
		w, h := 1+rng.IntN(90), 1+rng.IntN(60)
		m := testImage(w, h, uint64(trial))
		cw, ch := 1+rng.IntN(w), 1+rng.IntN(h)
		x0, y0 := rng.IntN(w-cw+1), rng.IntN(h-ch+1)
		if trial%3 == 0 { // the bottom-right corner: the last bytes of the buffer
			x0, y0 = w-cw, h-ch
		}
		ow, oh := 1+rng.IntN(70), 1+rng.IntN(70)
		f := []Interpolation{Bilinear, Bicubic, Box, Lanczos}[trial%4]
		src := view{pix: m.Pix, off: (y0*w + x0) * 3, stride: w * 3, w: cw, h: ch}

		rows := resampleCoefficients(cw, ow, filters[f])
		fast, slow := NewImage(ow, ch), NewImage(ow, ch)
		resampleRows(fast, src, rows)
		for y := range ch {
			resampleRowGo(slow.Pix[y*ow*3:(y+1)*ow*3], src.row(y), rows, 0)
		}
		if !bytes.Equal(fast.Pix, slow.Pix) {
			t.Fatalf("%s rows of %dx%d at (%d, %d) in %dx%d to width %d: the kernel differs", f, cw, ch, x0, y0, w, h, ow)
		}

		cols := resampleCoefficients(ch, oh, filters[f])
		fast, slow = NewImage(cw, oh), NewImage(cw, oh)
		resampleColumns(fast, src, cols)
		acc := make([]int32, cw*3)
		for y := range oh {
			resampleColumnGo(slow.Pix[y*cw*3:(y+1)*cw*3], src, cols, y, 0, acc)
		}
		if !bytes.Equal(fast.Pix, slow.Pix) {
			t.Fatalf("%s columns of %dx%d at (%d, %d) in %dx%d to height %d: the kernel differs", f, cw, ch, x0, y0, w, h, oh)
		}
	}
}

// The blend kernel gives blendValue's result for every pair of levels.
func TestBlendKernelMatchesGo(t *testing.T) {
	if !hasAVX2 {
		t.Skip("no AVX2 here")
	}
	pix, gray := make([]uint8, 1<<16), make([]uint8, 1<<16)
	for _, a := range []float32{0, 0.6, 1, 1.137, 1.4, 2.5, -0.3} {
		for i := range pix {
			gray[i], pix[i] = uint8(i>>8), uint8(i)
		}
		if n := blendWithAVX2(pix, gray, a); n != len(pix) {
			t.Fatalf("the kernel blended %d values", n)
		}
		for i, got := range pix {
			if want := blendValue(float32(i>>8), float32(uint8(i)), a); got != want {
				t.Fatalf("a = %g, gray %d, value %d: %d, want %d", a, i>>8, uint8(i), got, want)
			}
		}
	}
}

// The hue kernel gives the Go code's result (which the HSV tests hold to Pillow's) for
// every colour, at several shifts.
func TestHueKernelMatchesGo(t *testing.T) {
	if !hasAVX2 {
		t.Skip("no AVX2 here")
	}
	every := make([]uint8, 3<<24)
	for i := range 1 << 24 {
		every[3*i], every[3*i+1], every[3*i+2] = uint8(i>>16), uint8(i>>8), uint8(i)
	}
	fast, slow := make([]uint8, len(every)), make([]uint8, len(every))
	tab := hsvTables()
	for _, shift := range []uint8{0, 1, 102, 153, 221, 255} {
		copy(fast, every)
		copy(slow, every)
		done := hueWithAVX2(fast, shift)
		if done < len(fast)-24 {
			t.Fatalf("the kernel did %d of %d bytes", done, len(fast))
		}
		for i := 0; i < done; i += 3 {
			p := slow[i : i+3]
			if p[0] != p[1] || p[1] != p[2] {
				h, s, v := tab.rgbToHSV(p[0], p[1], p[2])
				p[0], p[1], p[2] = tab.hsvToRGB(h+shift, s, v)
			}
		}
		if !bytes.Equal(fast[:done], slow[:done]) {
			for i := 0; i < done; i += 3 {
				if !bytes.Equal(fast[i:i+3], slow[i:i+3]) {
					t.Fatalf("shift %d, colour %v: %v, want %v", shift, every[i:i+3], fast[i:i+3], slow[i:i+3])
				}
			}
		}
	}
}

// The hue kernel multiplies by 1/255.0 where Pillow divides by 255.0: for each of the 256
// hues and saturations, the values that reach the output bytes are the same.
func TestHueKernelReciprocalsAreExact(t *testing.T) {
	for v := range 256 {
		a := float64(float32(v)) * 6 / 255
		b := float64(float32(v)) * 6 * (1.0 / 255)
		if math.Floor(a) != math.Floor(b) || float32(a-math.Floor(a)) != float32(b-math.Floor(b)) {
			t.Errorf("hue %d: %v and %v", v, a, b)
		}
		if float32(float64(v)/255) != float32(float64(v)*(1.0/255)) {
			t.Errorf("saturation %d", v)
		}
	}
}

// The one-level blend kernel gives blendValue's result for every level and value.
func TestBlendLevelKernelMatchesGo(t *testing.T) {
	if !hasAVX2 {
		t.Skip("no AVX2 here")
	}
	pix := make([]uint8, 256+8+7) // both loops of the kernel, and a tail it leaves
	for _, a := range []float32{0, 0.6, 1, 1.137, 1.4, 2.5, -0.3} {
		for level := range 256 {
			for i := range pix {
				pix[i] = uint8(i)
			}
			n := blendLevelWithAVX2(pix, float32(level), a)
			if n != len(pix)&^7 {
				t.Fatalf("the kernel blended %d values", n)
			}
			for i, got := range pix[:n] {
				if want := blendValue(float32(level), float32(uint8(i)), a); got != want {
					t.Fatalf("a = %g, level %d, value %d: %d, want %d", a, level, uint8(i), got, want)
				}
			}
		}
	}
}

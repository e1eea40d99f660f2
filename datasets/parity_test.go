package datasets

import (
	"encoding/json"
	"fmt"
	"image"
	"image/png"
	"math"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/goselfsup/goselfsup/datasets/jpegturbo"
	"github.com/goselfsup/goselfsup/internal/pyref"
	"github.com/goselfsup/goselfsup/internal/shareddata"
)

// testImage draws an image with smooth gradients, edges and noise, so that every filter
// tap matters.
func testImage(w, h int, seed uint64) Image {
	rng := rand.New(rand.NewPCG(seed, 9))
	m := NewImage(w, h)
	var a, bx, by [3]float64
	for c := range 3 {
		a[c], bx[c], by[c] = 255*rng.Float64(), 6*(rng.Float64()-0.5), 6*(rng.Float64()-0.5)
	}
	cx, cy, r := rng.Float64()*float64(w), rng.Float64()*float64(h), float64(min(w, h))/3
	for y := 0; y < h; y++ {
		for x := 0; x < w; x++ {
			inside := math.Hypot(float64(x)-cx, float64(y)-cy) < r
			for c := range 3 {
				v := a[c] + bx[c]*float64(x) + by[c]*float64(y) + 25*rng.NormFloat64()
				if inside {
					v = 255 - v
				}
				m.Pix[(y*w+x)*3+c] = clampByte(v)
			}
		}
	}
	return m
}

func savePNG(t *testing.T, path string, m Image) {
	t.Helper()
	img := image.NewNRGBA(image.Rect(0, 0, m.Width, m.Height))
	for i := 0; i < m.Width*m.Height; i++ {
		copy(img.Pix[4*i:4*i+3], m.Pix[3*i:3*i+3])
		img.Pix[4*i+3] = 255
	}
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := png.Encode(f, img); err != nil {
		t.Fatal(err)
	}
}

type parityCase struct {
	Name          string    `json:"name"`
	Input         string    `json:"input"`
	Op            string    `json:"op"`
	Box           []int     `json:"box,omitempty"`  // top, left, height, width
	Size          any       `json:"size,omitempty"` // [h, w] for torchvision, [w, h] for PIL's resize, or an int
	Interpolation string    `json:"interpolation,omitempty"`
	Factor        float64   `json:"factor,omitempty"`
	Weights       []float64 `json:"weights,omitempty"`
	Path          string    `json:"path,omitempty"` // a JPEG, for "decode"
	// ours computes the same with goselfsup's code.
	ours func(Image) (Image, error) `json:"-"`
	// tolerance is the largest difference allowed in a channel value.
	tolerance int `json:"-"`
}

// TestParityWithTorchvision compares each transform with torchvision and Pillow
// (benchmarks/pipeline_reference.py) for fixed parameters: the outputs must be equal.
func TestParityWithTorchvision(t *testing.T) {
	python, err := pyref.Python("torchvision", "PIL", "numpy")
	if err != nil {
		t.Skip(err)
	}
	dir := t.TempDir()
	inputs := map[string]Image{"a": testImage(97, 64, 1), "b": testImage(50, 37, 2), "c": testImage(20, 15, 3)}
	for name, m := range inputs {
		savePNG(t, filepath.Join(dir, name+".png"), m)
	}
	crop := func(top, left, h, w, oh, ow int, interp Interpolation) func(Image) (Image, error) {
		return func(m Image) (Image, error) { return m.ResizeRegion(left, top, w, h, ow, oh, interp) }
	}
	resize := func(w, h int, interp Interpolation) func(Image) (Image, error) {
		return func(m Image) (Image, error) { return m.Resize(w, h, interp) }
	}
	inPlace := func(f func(Image)) func(Image) (Image, error) {
		return func(m Image) (Image, error) { m = m.Clone(); f(m); return m, nil }
	}
	apply := func(tr Transform) func(Image) (Image, error) {
		return func(m Image) (Image, error) {
			s := Sample{Image: m.Clone()}
			err := tr.Apply(&s, rand.New(rand.NewPCG(1, 1)))
			return s.Image, err
		}
	}
	gray, err := (&RandomGrayscaleConfig{Prob: 1, KeepChannels: true, ChannelWeights: [3]float64{0.114, 0.587, 0.2989}, ColorFormat: "bgr"}).Build(nil)
	if err != nil {
		t.Fatal(err)
	}
	cases := []parityCase{
		{Name: "rrc_bilinear", Input: "a", Op: "resized_crop", Box: []int{5, 7, 40, 50}, Size: []int{24, 28}, Interpolation: "bilinear", ours: crop(5, 7, 40, 50, 24, 28, Bilinear)},
		{Name: "rrc_bicubic", Input: "a", Op: "resized_crop", Box: []int{0, 30, 64, 60}, Size: []int{32, 32}, Interpolation: "bicubic", ours: crop(0, 30, 64, 60, 32, 32, Bicubic)},
		{Name: "rrc_up_bilinear", Input: "b", Op: "resized_crop", Box: []int{3, 4, 15, 20}, Size: []int{32, 32}, Interpolation: "bilinear", ours: crop(3, 4, 15, 20, 32, 32, Bilinear)},
		{Name: "rrc_up_bicubic", Input: "b", Op: "resized_crop", Box: []int{3, 4, 15, 20}, Size: []int{30, 41}, Interpolation: "bicubic", ours: crop(3, 4, 15, 20, 30, 41, Bicubic)},
		{Name: "resize_bilinear", Input: "a", Op: "resize", Size: []int{40, 30}, Interpolation: "bilinear", ours: resize(40, 30, Bilinear)},
		{Name: "resize_bicubic", Input: "a", Op: "resize", Size: []int{33, 50}, Interpolation: "bicubic", ours: resize(33, 50, Bicubic)},
		{Name: "resize_lanczos", Input: "a", Op: "resize", Size: []int{45, 21}, Interpolation: "lanczos", ours: resize(45, 21, Lanczos)},
		{Name: "resize_area", Input: "a", Op: "resize", Size: []int{31, 19}, Interpolation: "area", ours: resize(31, 19, Box)},
		{Name: "resize_nearest", Input: "a", Op: "resize", Size: []int{41, 23}, Interpolation: "nearest", ours: resize(41, 23, Nearest)},
		{Name: "resize_up_bilinear", Input: "c", Op: "resize", Size: []int{61, 44}, Interpolation: "bilinear", ours: resize(61, 44, Bilinear)},
		{Name: "resize_up_bicubic", Input: "c", Op: "resize", Size: []int{61, 44}, Interpolation: "bicubic", ours: resize(61, 44, Bicubic)},
		{Name: "hflip", Input: "b", Op: "hflip", ours: func(m Image) (Image, error) { return m.FlipH(), nil }},
		{Name: "vflip", Input: "b", Op: "vflip", ours: func(m Image) (Image, error) { return m.FlipV(), nil }},
		{Name: "grayscale", Input: "a", Op: "grayscale", Weights: []float64{0.114, 0.587, 0.2989}, ours: apply(gray.(Transform))},
		{Name: "center_crop", Input: "a", Op: "center_crop", Size: []int{20, 31}, ours: apply(&centerCrop{w: 31, h: 20})},
		{Name: "resize_edge", Input: "a", Op: "resize_edge", Size: 32, Interpolation: "bilinear", ours: apply(&resizeEdge{scale: 32, edge: "short", interp: Bilinear})},
	}
	for _, f := range []float64{0.6, 1.4, 1.137} {
		cases = append(cases,
			parityCase{Name: fmt.Sprintf("brightness_%g", f), Input: "a", Op: "brightness", Factor: f, ours: inPlace(func(m Image) { adjustBrightness(m, f) })},
			parityCase{Name: fmt.Sprintf("contrast_%g", f), Input: "a", Op: "contrast", Factor: f, ours: inPlace(func(m Image) { adjustContrast(m, f) })},
			parityCase{Name: fmt.Sprintf("saturation_%g", f), Input: "a", Op: "saturation", Factor: f, ours: inPlace(func(m Image) { adjustSaturation(m, f) })})
	}
	for _, f := range []float64{0.4, -0.4, 0.13, -0.27} {
		cases = append(cases, parityCase{Name: fmt.Sprintf("hue_%g", f), Input: "a", Op: "hue", Factor: f,
			ours: inPlace(func(m Image) { adjustHue(m.Pix, f) })})
	}
	// Decoding: libjpeg-turbo decodes as Pillow does (Pillow links it too); Go's decoder
	// (other IDCT and chroma upsampling) differs a little, which the tolerance states.
	if dir, err := shareddata.Dir("coco128-lightly"); err == nil {
		paths, _ := filepath.Glob(filepath.Join(dir, "images", "val2017", "*.jpg"))
		for i, p := range paths[:min(len(paths), 4)] {
			decode := func(goOnly bool) func(Image) (Image, error) {
				return func(Image) (Image, error) {
					data, err := os.ReadFile(p)
					if err != nil {
						return Image{}, err
					}
					m, _, err := decodeBytes(data, 1, goOnly)
					return m, err
				}
			}
			if jpegturbo.Available() {
				cases = append(cases, parityCase{Name: fmt.Sprintf("decode_turbo_%d", i), Op: "decode", Path: p, ours: decode(false)})
			}
			cases = append(cases, parityCase{Name: fmt.Sprintf("decode_go_%d", i), Op: "decode", Path: p, ours: decode(true), tolerance: 6})
		}
	}
	data, _ := json.Marshal(cases)
	if err := os.WriteFile(filepath.Join(dir, "cases.json"), data, 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(python, "../benchmarks/pipeline_reference.py", "parity", dir).CombinedOutput(); err != nil {
		t.Fatalf("the reference failed: %v\n%s", err, out)
	}
	for _, c := range cases {
		want, err := DecodeFile(filepath.Join(dir, c.Name+".out.png"))
		if err != nil {
			t.Fatal(err)
		}
		got, err := c.ours(inputs[c.Input])
		if err != nil {
			t.Fatalf("%s: %v", c.Name, err)
		}
		if got.Width != want.Width || got.Height != want.Height {
			t.Errorf("%s: %dx%d, torchvision %dx%d", c.Name, got.Width, got.Height, want.Width, want.Height)
			continue
		}
		worst, differing := 0, 0
		for i := range got.Pix {
			d := int(got.Pix[i]) - int(want.Pix[i])
			if d != 0 {
				differing++
				worst = max(worst, d, -d)
			}
		}
		if differing > 0 {
			t.Logf("%s: %d of %d values differ, by up to %d", c.Name, differing, len(got.Pix), worst)
		}
		if worst > c.tolerance {
			t.Errorf("%s: %d of %d values differ, by up to %d", c.Name, differing, len(got.Pix), worst)
		}
	}
}

// TestHSVAgainstPillowEveryColour compares our HSV conversions, which ColorJitter's hue
// uses, with Pillow's on all 2^24 inputs each way: they must be equal.
func TestHSVAgainstPillowEveryColour(t *testing.T) {
	python, err := pyref.Python("PIL", "numpy")
	if err != nil {
		t.Skip(err)
	}
	script, err := filepath.Abs(filepath.Join("..", "benchmarks", "pipeline_reference.py"))
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if out, err := exec.Command(python, script, "hsv", dir).CombinedOutput(); err != nil {
		t.Fatalf("the reference: %v\n%s", err, out)
	}
	for _, conv := range []struct {
		file string
		f    func(a, b, c uint8) (uint8, uint8, uint8)
	}{{"rgb2hsv.bin", rgbToHSV}, {"hsv2rgb.bin", hsvToRGB}} {
		want, err := os.ReadFile(filepath.Join(dir, conv.file))
		if err != nil {
			t.Fatal(err)
		}
		if len(want) != 3<<24 {
			t.Fatalf("%s: %d bytes", conv.file, len(want))
		}
		bad := 0
		for i := range 1 << 24 {
			a, b, c := uint8(i>>16), uint8(i>>8), uint8(i)
			x, y, z := conv.f(a, b, c)
			if w := want[3*i : 3*i+3]; x != w[0] || y != w[1] || z != w[2] {
				if bad++; bad <= 5 {
					t.Errorf("%s of (%d, %d, %d) = (%d, %d, %d), Pillow gives %v", conv.file, a, b, c, x, y, z, w)
				}
			}
		}
		if bad > 0 {
			t.Errorf("%s: %d of 2^24 differ", conv.file, bad)
		}
	}
}

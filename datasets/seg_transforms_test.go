package datasets

import (
	"math/rand/v2"
	"reflect"
	"strings"
	"testing"

	"github.com/goselfsup/goselfsup/registry"
)

func transform(t *testing.T, table map[string]any) Transform {
	t.Helper()
	typ := table["type"].(string)
	rest := map[string]any{}
	for k, v := range table {
		if k != "type" {
			rest[k] = v
		}
	}
	tr, err := registry.Build[Transform](&registry.Env{}, registry.NewSpec(registry.Transforms, typ, rest))
	if err != nil {
		t.Fatal(err)
	}
	return tr
}

// The golden values of these tests come from OpenCV 4.6 (Debian's python3-opencv) and NumPy,
// with mmseg's formulas, not from the code under test. OpenCV converts HSV to RGB in blocks
// of 32 pixels with its vectorised kernel and the rest of a row with a scalar one, which
// rounds differently; the golden pixels were converted inside a 64-pixel row, where the
// vectorised kernel, which goselfsup follows, handles them all.

var goldenMask = []uint8{15, 4, 3, 19, 7, 14, 8, 14, 10, 8, 7, 6, 4, 16, 7, 12, 0, 11, 6, 19, 12, 5, 16, 0, 2, 9, 14, 6, 4, 14, 9, 3, 3, 8, 19}

func TestMaskResizeNearestIsOpenCVs(t *testing.T) {
	m := &Mask{Width: 7, Height: 5, Pix: goldenMask}
	for _, c := range []struct {
		w, h int
		want []uint8
	}{
		{11, 3, []uint8{15, 15, 4, 4, 3, 19, 19, 7, 14, 14, 8, 14, 14, 10, 10, 8, 7, 7, 6, 4, 4, 16, 5, 5, 16, 16, 0, 2, 2, 9, 14, 14, 6}},
		{3, 8, []uint8{15, 3, 7, 15, 3, 7, 14, 8, 6, 14, 8, 6, 7, 0, 6, 5, 0, 9, 5, 0, 9, 4, 9, 3}},
	} {
		if got := m.ResizeNearest(c.w, c.h).Pix; !reflect.DeepEqual(got, c.want) {
			t.Errorf("%dx%d: got %v, want %v", c.w, c.h, got, c.want)
		}
	}
}

var goldenPix = []uint8{10, 10, 10, 255, 0, 0, 250, 252, 3, 252, 71, 23, 10, 233, 35, 192, 61, 135, 151, 92, 247, 224, 149, 100, 163, 225, 67, 123, 219, 225, 19, 155, 4, 19, 33, 123}

func TestPhotoMetricStepsAreMMSegsWithOpenCV(t *testing.T) {
	run := func(f func([]uint8)) []uint8 {
		p := append([]uint8(nil), goldenPix...)
		f(p)
		return p
	}
	for _, c := range []struct {
		name string
		got  []uint8
		want []uint8
	}{
		{"brightness +13.7", run(func(p []uint8) { convertPix(p, 1, 13.7) }),
			[]uint8{23, 23, 23, 255, 13, 13, 255, 255, 16, 255, 84, 36, 23, 246, 48, 205, 74, 148, 164, 105, 255, 237, 162, 113, 176, 238, 80, 136, 232, 238, 32, 168, 17, 32, 46, 136}},
		{"brightness -31.2", run(func(p []uint8) { convertPix(p, 1, -31.2) }),
			[]uint8{0, 0, 0, 223, 0, 0, 218, 220, 0, 220, 39, 0, 0, 201, 3, 160, 29, 103, 119, 60, 215, 192, 117, 68, 131, 193, 35, 91, 187, 193, 0, 123, 0, 0, 1, 91}},
		{"contrast 0.73", run(func(p []uint8) { convertPix(p, 0.73, 0) }),
			[]uint8{7, 7, 7, 186, 0, 0, 182, 183, 2, 183, 51, 16, 7, 170, 25, 140, 44, 98, 110, 67, 180, 163, 108, 73, 118, 164, 48, 89, 159, 164, 13, 113, 2, 13, 24, 89}},
		{"saturation 1.37", run(func(p []uint8) {
			forEachHSV(p, func(h, s, v uint8) (uint8, uint8, uint8) { return h, convertValue(s, 1.37, 0), v })
		}), []uint8{10, 10, 10, 255, 0, 0, 252, 252, 0, 252, 50, 0, 0, 233, 23, 192, 12, 114, 112, 34, 247, 224, 122, 54, 138, 225, 8, 85, 215, 225, 15, 155, 0, 0, 16, 123}},
		{"hue -11", run(func(p []uint8) {
			forEachHSV(p, func(h, s, v uint8) (uint8, uint8, uint8) { return uint8((int(h) - 11 + 180) % 180), s, v })
		}), []uint8{10, 10, 10, 255, 0, 93, 252, 160, 2, 252, 22, 60, 69, 233, 10, 192, 60, 183, 92, 92, 247, 224, 104, 100, 219, 225, 67, 122, 225, 194, 74, 155, 4, 18, 70, 123}},
		{"hue +17", run(func(p []uint8) {
			forEachHSV(p, func(h, s, v uint8) (uint8, uint8, uint8) { return uint8((int(h) + 17) % 180), s, v })
		}), []uint8{10, 10, 10, 255, 144, 0, 110, 252, 2, 252, 198, 22, 10, 233, 158, 192, 60, 60, 236, 92, 247, 224, 219, 100, 72, 225, 67, 122, 160, 225, 4, 155, 74, 63, 18, 123}},
	} {
		if !reflect.DeepEqual(c.got, c.want) {
			t.Errorf("%s:\n got %v\nwant %v", c.name, c.got, c.want)
		}
	}
	// cv2.cvtColor(COLOR_RGB2HSV) of the same pixels.
	wantHSV := []uint8{0, 0, 10, 0, 255, 255, 30, 252, 252, 6, 232, 252, 63, 244, 233, 163, 174, 192, 131, 160, 247, 12, 141, 224, 42, 179, 225, 92, 116, 225, 57, 248, 155, 116, 216, 123}
	for i := 0; i < len(goldenPix); i += 3 {
		h, s, v := cvRGBToHSV(goldenPix[i], goldenPix[i+1], goldenPix[i+2])
		if w := wantHSV[i : i+3]; h != w[0] || s != w[1] || v != w[2] {
			t.Errorf("HSV of %v = %d %d %d, want %v", goldenPix[i:i+3], h, s, v, w)
		}
	}
}

func TestPhotoMetricDistortionOrderAndDeterminism(t *testing.T) {
	tr := transform(t, map[string]any{"type": "PhotoMetricDistortion"}).(*photoMetricDistortion)
	img := Image{Width: 12, Height: 1}
	apply := func(seed uint64) []uint8 {
		s := Sample{Image: Image{Width: 12, Height: 1, Pix: append([]uint8(nil), goldenPix...)}}
		if err := tr.Apply(&s, SampleRNG(seed, 0, 5)); err != nil {
			t.Fatal(err)
		}
		return s.Image.Pix
	}
	changed := 0
	for seed := range uint64(40) {
		got := apply(seed)
		if !reflect.DeepEqual(got, apply(seed)) {
			t.Fatalf("seed %d: two runs differ", seed)
		}
		// Replay mmseg's draws on a copy of the stream, step by step.
		rng := SampleRNG(seed, 0, 5)
		want := append([]uint8(nil), goldenPix...)
		if rng.IntN(2) == 1 {
			convertPix(want, 1, -32+64*rng.Float64())
		}
		mode := rng.IntN(2)
		contrast := func() {
			if rng.IntN(2) == 1 {
				convertPix(want, 0.5+rng.Float64(), 0)
			}
		}
		if mode == 1 {
			contrast()
		}
		if rng.IntN(2) == 1 {
			a := float32(0.5 + rng.Float64())
			forEachHSV(want, func(h, s, v uint8) (uint8, uint8, uint8) { return h, convertValue(s, a, 0), v })
		}
		if rng.IntN(2) == 1 {
			d := rng.IntN(36) - 18
			forEachHSV(want, func(h, s, v uint8) (uint8, uint8, uint8) { return uint8((int(h) + d + 180) % 180), s, v })
		}
		if mode == 0 {
			contrast()
		}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("seed %d: got %v, want %v", seed, got, want)
		}
		if !reflect.DeepEqual(got, goldenPix) {
			changed++
		}
	}
	if changed < 30 {
		t.Errorf("only %d of 40 draws changed the image", changed)
	}
	_ = img
}

// segSample is a w x h sample whose image encodes each pixel's class (R = 10 * class,
// G = x, B = y) and whose map holds the classes, in vertical stripes of stripe pixels.
func segSample(w, h, stripe int) Sample {
	img := NewImage(w, h)
	m := &Mask{Width: w, Height: h, Pix: make([]uint8, w*h)}
	for y := 0; y < h; y++ {
		for x := 0; x < w; x++ {
			c := uint8(x / stripe % 20)
			m.Pix[y*w+x] = c
			p := img.Pix[(y*w+x)*3:]
			p[0], p[1], p[2] = 10*c, uint8(x), uint8(y)
		}
	}
	return Sample{Image: img, Mask: m, OriHeight: h, OriWidth: w}
}

// aligned checks that each labelled pixel's image value is its class's (R = 10 * class),
// margin pixels away from stripe edges, where resampling mixes classes.
func aligned(t *testing.T, s Sample, margin int) {
	t.Helper()
	m := s.Mask
	if m.Width != s.Image.Width || m.Height != s.Image.Height {
		t.Fatalf("map %dx%d, image %dx%d", m.Width, m.Height, s.Image.Width, s.Image.Height)
	}
	checked := 0
	for y := 0; y < m.Height; y++ {
		for x := margin; x < m.Width-margin; x++ {
			c := m.Pix[y*m.Width+x]
			if c == 255 || m.Pix[y*m.Width+x-margin] != c || m.Pix[y*m.Width+x+margin] != c {
				continue
			}
			if r := s.Image.Pix[(y*m.Width+x)*3]; int(r) != 10*int(c) {
				t.Fatalf("pixel (%d, %d): class %d but R = %d", x, y, c, r)
			}
			checked++
		}
	}
	if checked == 0 {
		t.Fatal("no pixel checked")
	}
}

func TestRandomFlipFlipsTheMap(t *testing.T) {
	for _, dir := range []string{"horizontal", "vertical", "diagonal"} {
		tr := transform(t, map[string]any{"type": "RandomFlip", "prob": 1.0, "direction": dir})
		s := segSample(15, 4, 5)
		s.Mask.Pix[0] = 255 // a corner that moves
		if err := tr.Apply(&s, SampleRNG(1, 0, 0)); err != nil {
			t.Fatal(err)
		}
		aligned(t, s, 0)
		corner := map[string]int{"horizontal": 14, "vertical": 3 * 15, "diagonal": 4*15 - 1}[dir]
		if s.Mask.Pix[corner] != 255 {
			t.Errorf("%s: the ignored corner is not at %d: %v", dir, corner, s.Mask.Pix)
		}
	}
}

func TestRescaleSizeIsMMCVs(t *testing.T) {
	// mmcv.rescale_size((w, h), scale): factor min(long/max(w, h), short/min(w, h)), sides
	// int(side * factor + 0.5); worked by hand.
	for _, c := range []struct{ w, h, sw, sh, ww, wh int }{
		{500, 375, 2048, 512, 683, 512},   // 512/375 = 1.3653: 682.67 -> 683
		{375, 500, 2048, 512, 512, 683},   //
		{500, 333, 1024, 256, 384, 256},   // 256/333 = 0.76877: 384.38 -> 384
		{4000, 300, 2048, 512, 2048, 154}, // 2048/4000 = 0.512: 153.6 -> 154
		{640, 480, 3067, 766, 1021, 766},  // 766/480 = 1.59583: 1021.33 -> 1021
	} {
		if w, h := rescaleSize(c.w, c.h, c.sw, c.sh); w != c.ww || h != c.wh {
			t.Errorf("%dx%d in %dx%d: %dx%d, want %dx%d", c.w, c.h, c.sw, c.sh, w, h, c.ww, c.wh)
		}
	}
}

func TestRandomResizeDrawsTheRatioAndResizesTheMap(t *testing.T) {
	tr := transform(t, map[string]any{"type": "RandomResize", "scale": []int{2048, 512}, "ratio_range": []float64{0.5, 2.0}, "keep_ratio": true})
	for seed := range uint64(8) {
		s := segSample(64, 48, 8)
		if err := tr.Apply(&s, SampleRNG(seed, 0, 0)); err != nil {
			t.Fatal(err)
		}
		r := 0.5 + 1.5*SampleRNG(seed, 0, 0).Float64() // mmcv: random_sample() * (max - min) + min
		sw, sh := int(2048*r), int(512*r)
		f := min(float64(max(sw, sh))/64, float64(min(sw, sh))/48)
		ww, wh := int(64*f+0.5), int(48*f+0.5)
		if s.Image.Width != ww || s.Image.Height != wh {
			t.Fatalf("seed %d: %dx%d, want %dx%d", seed, s.Image.Width, s.Image.Height, ww, wh)
		}
		if !reflect.DeepEqual(s.Mask, (&Mask{Width: 64, Height: 48, Pix: segSample(64, 48, 8).Mask.Pix}).ResizeNearest(ww, wh)) {
			t.Fatalf("seed %d: the map is not the nearest resize of the original", seed)
		}
		aligned(t, s, 2*int(f)+2)
		if s.OriHeight != 48 || s.OriWidth != 64 {
			t.Fatalf("ori shape changed: %dx%d", s.OriWidth, s.OriHeight)
		}
	}
}

func TestSegRandomCropCatMaxRatio(t *testing.T) {
	// An 8x2 map: columns 0-5 class 1, 6-7 class 2. A 2x4 crop at x offset 0..4 has class 1
	// on 100%, 100%, 100%, 75% and 50% of its pixels: only x = 4 is below 0.75.
	mk := func() Sample {
		s := Sample{Image: NewImage(8, 2), Mask: &Mask{Width: 8, Height: 2, Pix: []uint8{1, 1, 1, 1, 1, 1, 2, 2, 1, 1, 1, 1, 1, 1, 2, 2}}}
		for i := range s.Image.Pix {
			s.Image.Pix[i] = uint8(i / 3 % 8) // each pixel's x
		}
		return s
	}
	tr := transform(t, map[string]any{"type": "RandomCrop", "crop_size": []int{2, 4}, "cat_max_ratio": 0.75})
	hits := 0
	for seed := range uint64(60) {
		s := mk()
		if err := tr.Apply(&s, SampleRNG(seed, 0, 0)); err != nil {
			t.Fatal(err)
		}
		// mmseg: a first box, then up to 10 checks, each failure drawing a new box (y offset
		// from randint(0, 1), then x from randint(0, 5)); the last box is kept unchecked.
		rng := SampleRNG(seed, 0, 0)
		draw := func() int { rng.IntN(1); return rng.IntN(5) }
		want := draw()
		for range 10 {
			if want == 4 {
				break
			}
			want = draw()
		}
		if s.Image.Width != 4 || s.Image.Height != 2 || s.Mask.Width != 4 {
			t.Fatalf("crop is %dx%d", s.Image.Width, s.Image.Height)
		}
		if got := int(s.Image.Pix[0]); got != want || s.Mask.Pix[3] != map[bool]uint8{true: 2, false: 1}[want >= 3] {
			t.Fatalf("seed %d: crop at x %d (map %v), want %d", seed, got, s.Mask.Pix, want)
		}
		if want == 4 {
			hits++
		}
	}
	if hits < 45 {
		t.Errorf("only %d of 60 crops found the mixed box", hits)
	}
	// Ignored pixels do not count, and one class alone never passes: the 11th box is kept.
	s := Sample{Image: NewImage(8, 2), Mask: &Mask{Width: 8, Height: 2, Pix: []uint8{255, 255, 255, 255, 255, 255, 2, 2, 255, 255, 255, 255, 255, 255, 2, 2}}}
	for i := range s.Image.Pix {
		s.Image.Pix[i] = uint8(i / 3 % 8)
	}
	if err := tr.Apply(&s, SampleRNG(3, 0, 0)); err != nil {
		t.Fatal(err)
	}
	rng := SampleRNG(3, 0, 0)
	var x int
	for range 11 {
		rng.IntN(1)
		x = rng.IntN(5)
	}
	if int(s.Image.Pix[0]) != x {
		t.Errorf("one class: crop at %d, want the 11th draw %d", s.Image.Pix[0], x)
	}
}

func TestSegRandomCropOfASmallerImage(t *testing.T) {
	tr := transform(t, map[string]any{"type": "RandomCrop", "crop_size": 512})
	s := segSample(300, 200, 10)
	if err := tr.Apply(&s, SampleRNG(1, 0, 0)); err != nil {
		t.Fatal(err)
	}
	if s.Image.Width != 300 || s.Image.Height != 200 || s.Mask.Width != 300 || s.Mask.Height != 200 {
		t.Fatalf("mmseg keeps a smaller image whole: %dx%d", s.Image.Width, s.Image.Height)
	}
	s = segSample(600, 520, 10)
	if err := tr.Apply(&s, SampleRNG(1, 0, 0)); err != nil {
		t.Fatal(err)
	}
	aligned(t, s, 0)
	if s.Image.Width != 512 || s.Image.Height != 512 {
		t.Fatalf("crop %dx%d", s.Image.Width, s.Image.Height)
	}
}

func TestPad(t *testing.T) {
	tr := transform(t, map[string]any{"type": "Pad", "size": []int{5, 4}, "pad_val": 7})
	s := segSample(3, 2, 1)
	if err := tr.Apply(&s, nil); err != nil {
		t.Fatal(err)
	}
	wantMask := []uint8{0, 1, 2, 255, 255, 0, 1, 2, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255}
	if s.Image.Width != 5 || s.Image.Height != 4 || !reflect.DeepEqual(s.Mask.Pix, wantMask) {
		t.Fatalf("padded %dx%d, map %v", s.Image.Width, s.Image.Height, s.Mask.Pix)
	}
	if p := s.Image.Pix; p[3*3] != 7 || p[3*3+1] != 7 || p[(5*3+1)*3] != 7 || p[3] != 10 || p[(5+2)*3] != 20 {
		t.Fatalf("padded image %v", p)
	}
	if s.PadHeight != 2 || s.PadWidth != 3 {
		t.Fatalf("img_shape %dx%d, want 3x2", s.PadWidth, s.PadHeight)
	}
	tr = transform(t, map[string]any{"type": "Pad", "size_divisor": 4, "pad_val": map[string]any{"img": 1, "seg": 9}})
	s = segSample(5, 2, 1)
	if err := tr.Apply(&s, nil); err != nil {
		t.Fatal(err)
	}
	if s.Image.Width != 8 || s.Image.Height != 4 || s.Mask.Pix[7] != 9 || s.Image.Pix[7*3] != 1 {
		t.Fatalf("size_divisor 4: %dx%d, map %v", s.Image.Width, s.Image.Height, s.Mask.Pix)
	}
	if err := transform(t, map[string]any{"type": "Pad", "size": 2}).Apply(&s, nil); err == nil {
		t.Fatal("padding to a smaller size worked")
	}
}

func TestSegTrainPipelineKeepsMapAndImageAligned(t *testing.T) {
	specs := []map[string]any{
		{"type": "RandomResize", "scale": []int{256, 64}, "ratio_range": []float64{0.5, 2.0}, "keep_ratio": true},
		{"type": "RandomCrop", "crop_size": 64, "cat_max_ratio": 0.75},
		{"type": "RandomFlip", "prob": 0.5},
		{"type": "Pad", "size": 64},
	}
	var pipeline []Transform
	for _, s := range specs {
		pipeline = append(pipeline, transform(t, s))
	}
	for seed := range uint64(20) {
		s := segSample(80, 60, 12)
		rng := SampleRNG(seed, 0, 0)
		for _, tr := range pipeline {
			if err := tr.Apply(&s, rng); err != nil {
				t.Fatal(err)
			}
		}
		if s.Image.Width != 64 || s.Image.Height != 64 {
			t.Fatalf("seed %d: %dx%d", seed, s.Image.Width, s.Image.Height)
		}
		for i, c := range s.Mask.Pix {
			y, x := i/64, i%64
			if inside := y < s.PadHeight && x < s.PadWidth; inside == (c == 255) {
				t.Fatalf("seed %d: pixel (%d, %d) of the %dx%d image has class %d", seed, x, y, s.PadWidth, s.PadHeight, c)
			}
		}
		aligned(t, s, 3)
	}
}

func TestSegTransformsNeedTheirMap(t *testing.T) {
	tr := transform(t, map[string]any{"type": "RandomCrop", "crop_size": 4, "cat_max_ratio": 0.5})
	s := Sample{Image: NewImage(8, 8)}
	if err := tr.Apply(&s, rand.New(rand.NewPCG(1, 2))); err == nil {
		t.Fatal("cat_max_ratio without a map worked")
	}
	if err := transform(t, map[string]any{"type": "LoadAnnotations"}).Apply(&s, nil); err == nil {
		t.Fatal("LoadAnnotations without a segmentation dataset worked")
	}
}

func TestMapUnawareTransformsRefuseMaps(t *testing.T) {
	for _, spec := range []map[string]any{
		{"type": "CenterCrop", "crop_size": 4},
		{"type": "RandomResizedCrop", "size": 4},
		{"type": "ResizeEdge", "scale": 4},
	} {
		s := segSample(8, 8, 2)
		if err := transform(t, spec).Apply(&s, SampleRNG(1, 0, 0)); err == nil || !strings.Contains(err.Error(), "segmentation maps") {
			t.Errorf("%s on a sample with a map: %v", spec["type"], err)
		}
	}
}

// formulaImage is the w x h image whose byte i is (37 i + 11) mod 256, made alike in NumPy
// for the golden values.
func formulaImage(w, h int) Image {
	m := NewImage(w, h)
	for i := range m.Pix {
		m.Pix[i] = uint8((37*i + 11) % 256)
	}
	return m
}

func TestResizeAsOpenCV(t *testing.T) {
	for _, c := range []struct {
		name         string
		w, h, ow, oh int
		nearest      bool
		want         []uint8
	}{
		{"up", 6, 5, 9, 7, false, []uint8{11, 48, 85, 66, 103, 140, 140, 135, 172, 214, 38, 75, 160, 69, 106, 106, 143, 138, 180, 217, 41, 126, 163, 72, 54, 91, 128, 99, 136, 173, 81, 118, 155, 82, 101, 138, 156, 102, 139, 175, 84, 121, 170, 85, 104, 146, 159, 105, 141, 178, 87, 142, 179, 70, 136, 173, 210, 100, 137, 174, 70, 107, 144, 95, 132, 169, 157, 103, 140, 201, 73, 110, 153, 99, 135, 160, 160, 106, 179, 216, 70, 63, 100, 137, 119, 156, 193, 150, 187, 224, 53, 90, 127, 85, 122, 159, 158, 153, 190, 233, 56, 93, 179, 88, 125, 106, 143, 180, 173, 210, 64, 137, 174, 119, 107, 144, 151, 133, 169, 54, 103, 140, 86, 86, 110, 147, 159, 136, 173, 105, 106, 143, 33, 70, 107, 173, 210, 101, 156, 138, 101, 138, 84, 96, 139, 158, 73, 122, 159, 68, 104, 141, 87, 105, 142, 161, 87, 125, 161, 70, 107, 144, 115, 152, 189, 170, 79, 116, 202, 25, 62, 105, 99, 136, 136, 173, 82, 168, 205, 28, 71, 108, 102, 102, 139, 176, 158, 195, 232}},
		{"down", 9, 7, 4, 3, false, []uint8{128, 101, 137, 89, 116, 131, 51, 88, 125, 152, 82, 119, 101, 138, 79, 31, 68, 105, 217, 30, 67, 147, 184, 61, 203, 80, 117, 197, 84, 47, 158, 195, 83, 120, 125, 162}},
		{"half (INTER_AREA)", 4, 2, 2, 1, false, []uint8{97, 134, 107, 127, 100, 137}},
		{"nearest", 6, 5, 4, 7, true, []uint8{11, 48, 85, 122, 159, 196, 88, 125, 162, 199, 236, 17, 11, 48, 85, 122, 159, 196, 88, 125, 162, 199, 236, 17, 165, 202, 239, 20, 57, 94, 242, 23, 60, 97, 134, 171, 63, 100, 137, 174, 211, 248, 140, 177, 214, 251, 32, 69, 63, 100, 137, 174, 211, 248, 140, 177, 214, 251, 32, 69, 217, 254, 35, 72, 109, 146, 38, 75, 112, 149, 186, 223, 115, 152, 189, 226, 7, 44, 192, 229, 10, 47, 84, 121}},
	} {
		m := formulaImage(c.w, c.h)
		var got Image
		if c.nearest {
			got = m.resizeNearestCV(c.ow, c.oh)
		} else {
			got = m.resizeLinearCV(c.ow, c.oh)
		}
		if !reflect.DeepEqual(got.Pix, c.want) {
			t.Errorf("%s:\n got %v\nwant %v", c.name, got.Pix, c.want)
		}
	}
}

func TestCV2NearestKeepsImageAndMapAligned(t *testing.T) {
	tr := transform(t, map[string]any{"type": "RandomResize", "scale": []int{97, 31}, "ratio_range": []float64{0.5, 2.0}, "keep_ratio": true, "interpolation": "nearest"})
	for seed := range uint64(10) {
		s := segSample(37, 23, 3)
		if err := tr.Apply(&s, SampleRNG(seed, 0, 0)); err != nil {
			t.Fatal(err)
		}
		aligned(t, s, 0) // the same source pixel for the image and the map, everywhere
	}
}

package datasets

import (
	"context"
	"errors"
	"math/rand/v2"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/goselfsup/goselfsup/internal/shareddata"
	"github.com/goselfsup/goselfsup/registry"
)

func TestImageOps(t *testing.T) {
	m := Image{Width: 2, Height: 2, Pix: []uint8{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12}}
	if got := m.FlipH().Pix; !reflect.DeepEqual(got, []uint8{4, 5, 6, 1, 2, 3, 10, 11, 12, 7, 8, 9}) {
		t.Errorf("FlipH = %v", got)
	}
	if got := m.FlipV().Pix; !reflect.DeepEqual(got, []uint8{7, 8, 9, 10, 11, 12, 1, 2, 3, 4, 5, 6}) {
		t.Errorf("FlipV = %v", got)
	}
	if got := m.Crop(1, 1, 1, 1).Pix; !reflect.DeepEqual(got, []uint8{10, 11, 12}) {
		t.Errorf("Crop = %v", got)
	}
	// Pillow's luma: (R*19595 + G*38470 + B*7471 + 2^15) >> 16.
	if got := (Image{Width: 1, Height: 1, Pix: []uint8{200, 100, 50}}).Gray(); got[0] != uint8((200*19595+100*38470+50*7471+32768)>>16) {
		t.Errorf("Gray = %v", got)
	}
}

func TestResizeBilinearHalves(t *testing.T) {
	// A 4-pixel row shrunk to 2 with Pillow's bilinear filter: the triangle widened by the
	// scale 2 gives taps at distances 0.25, 0.25, 0.75 from the centre, weights 3:3:1.
	row := []uint8{0, 0, 0, 40, 40, 40, 80, 80, 80, 200, 200, 200}
	m := Image{Width: 4, Height: 1, Pix: row}
	got, err := m.Resize(2, 1, Bilinear)
	if err != nil {
		t.Fatal(err)
	}
	want0 := uint8(29)  // (3·0 + 3·40 + 1·80) / 7 = 28.57, rounded
	want1 := uint8(126) // (1·40 + 3·80 + 3·200) / 7 = 125.71, rounded
	if got.Pix[0] != want0 || got.Pix[3] != want1 {
		t.Errorf("Resize row = %v, want %d and %d", got.Pix, want0, want1)
	}
	if _, err := m.Resize(0, 1, Bilinear); err == nil {
		t.Error("a resize to zero width was accepted")
	}
}

func TestHSVRoundTrip(t *testing.T) {
	for _, c := range [][3]uint8{{0, 0, 0}, {255, 255, 255}, {128, 128, 128}, {255, 0, 0}, {0, 255, 0}, {0, 0, 255}, {200, 100, 50}} {
		h, s, v := rgbToHSV(c[0], c[1], c[2])
		r, g, b := hsvToRGB(h, s, v)
		for i, x := range []uint8{r, g, b} {
			if d := int(x) - int(c[i]); d > 2 || d < -2 {
				t.Errorf("HSV round trip of %v = %v", c, []uint8{r, g, b})
			}
		}
	}
	if h, s, v := rgbToHSV(255, 0, 0); h != 0 || s != 255 || v != 255 {
		t.Errorf("red in HSV = %d %d %d", h, s, v)
	}
	if h, _, _ := rgbToHSV(0, 0, 255); h != 170 { // 4/6 of 255, truncated
		t.Errorf("blue's hue = %d, want 170", h)
	}
}

func TestRandomResizedCropParams(t *testing.T) {
	full := &randomResizedCrop{h: 4, w: 4, scale: [2]float64{1, 1}, ratio: [2]float64{1, 1}, attempts: 10, interp: Bilinear}
	rng := rand.New(rand.NewPCG(1, 2))
	if y, x, h, w := full.cropParams(8, 8, rng); y != 0 || x != 0 || h != 8 || w != 8 {
		t.Errorf("scale 1, ratio 1 on a square: crop %d %d %d %d, want the whole image", y, x, h, w)
	}
	// No crop of area >= 99% has an aspect ratio in [2, 3] in a square image: the fallback
	// is the central crop of ratio 2, full width: h = round(10 / 2) = 5, y = (10 - 5) / 2.
	wide := &randomResizedCrop{h: 4, w: 4, scale: [2]float64{0.99, 1}, ratio: [2]float64{2, 3}, attempts: 10}
	if y, x, h, w := wide.cropParams(10, 10, rng); y != 2 || x != 0 || h != 5 || w != 10 {
		t.Errorf("fallback crop %d %d %d %d, want 2 0 5 10", y, x, h, w)
	}
	for range 200 {
		c := &randomResizedCrop{scale: [2]float64{0.2, 1}, ratio: [2]float64{3.0 / 4, 4.0 / 3}, attempts: 10}
		y, x, h, w := c.cropParams(30, 40, rng)
		if y < 0 || x < 0 || y+h > 30 || x+w > 40 || h < 1 || w < 1 {
			t.Fatalf("crop %d %d %d %d leaves a 40x30 image", y, x, h, w)
		}
	}
}

func TestColorOps(t *testing.T) {
	pix := []uint8{100, 200, 50}
	blend(pix, nil, 0, 1.5) // brightness 1.5: 150, 300 -> 255, 75
	if !reflect.DeepEqual(pix, []uint8{150, 255, 75}) {
		t.Errorf("brightness = %v", pix)
	}
	pix = []uint8{100, 200, 50}
	blend(pix, nil, 120, 0.5) // contrast toward the mean level 120
	if !reflect.DeepEqual(pix, []uint8{110, 160, 85}) {
		t.Errorf("contrast = %v", pix)
	}
	g := &randomGrayscale{prob: 1, weights: [3]float64{0.2989, 0.587, 0.114}, order: [3]int{0, 1, 2}}
	s := Sample{Image: Image{Width: 1, Height: 1, Pix: []uint8{200, 100, 50}}}
	if err := g.Apply(&s, rand.New(rand.NewPCG(1, 1))); err != nil {
		t.Fatal(err)
	}
	want := uint8(124) // 0.2989·200 + 0.587·100 + 0.114·50 = 124.18, truncated
	if !reflect.DeepEqual(s.Image.Pix, []uint8{want, want, want}) {
		t.Errorf("grayscale = %v, want %d thrice", s.Image.Pix, want)
	}
}

func buildDataset(t *testing.T, typ string, table map[string]any) *Dataset {
	t.Helper()
	ds, err := registry.Build[*Dataset](&registry.Env{}, registry.NewSpec(registry.Datasets, typ, table))
	if err != nil {
		t.Fatal(err)
	}
	return ds
}

func TestDemoShapesDeterministic(t *testing.T) {
	a := buildDataset(t, "DemoShapes", map[string]any{"num_samples": 20, "size": 12, "seed": 3})
	b := buildDataset(t, "DemoShapes", map[string]any{"num_samples": 20, "size": 12, "seed": 3})
	c := buildDataset(t, "DemoShapes", map[string]any{"num_samples": 20, "size": 12, "seed": 4})
	s1, _ := a.Get(7, nil)
	s2, _ := b.Get(7, nil)
	s3, _ := c.Get(7, nil)
	if !reflect.DeepEqual(s1, s2) || reflect.DeepEqual(s1.Image, s3.Image) {
		t.Error("demo images must depend on the seed and the index only")
	}
	if s1.Label != 7 || s1.Index != 7 || s1.Image.Width != 12 {
		t.Errorf("sample 7: label %d index %d width %d", s1.Label, s1.Index, s1.Image.Width)
	}
}

func TestLoaderIndependentOfWorkers(t *testing.T) {
	pipeline := []any{
		map[string]any{"type": "RandomResizedCrop", "size": 8, "scale": []float64{0.3, 1}},
		map[string]any{"type": "ColorJitter", "brightness": 0.4, "contrast": 0.4, "saturation": 0.4, "hue": 0.1},
		map[string]any{"type": "RandomFlip", "prob": 0.5},
	}
	ds := buildDataset(t, "DemoShapes", map[string]any{"num_samples": 50, "size": 12, "pipeline": pipeline})
	collect := func(workers int, epoch int) []*Batch {
		l := &Loader{Dataset: ds, BatchSize: 8, Workers: workers, DropLast: true, Shuffle: true, Seed: 5, Prefetch: 2}
		var out []*Batch
		for b, err := range l.Epoch(context.Background(), epoch) {
			if err != nil {
				t.Fatal(err)
			}
			out = append(out, b)
		}
		return out
	}
	one, three := collect(1, 0), collect(3, 0)
	if len(one) != 6 {
		t.Fatalf("%d batches of 8 from 50 samples with drop_last, want 6", len(one))
	}
	if !reflect.DeepEqual(one, three) {
		t.Error("1 and 3 workers give different batches")
	}
	if reflect.DeepEqual(one[0].Indices, collect(1, 1)[0].Indices) {
		t.Error("epochs 0 and 1 have the same order")
	}
	seen := map[int32]bool{}
	for _, b := range one {
		for _, i := range b.Indices {
			if seen[i] {
				t.Fatalf("index %d twice in an epoch", i)
			}
			seen[i] = true
		}
	}
}

func TestCIFARBinary(t *testing.T) {
	dir := t.TempDir()
	record := func(label byte, fill func(c, p int) byte) []byte {
		r := []byte{label}
		for c := 0; c < 3; c++ {
			for p := 0; p < 1024; p++ {
				r = append(r, fill(c, p))
			}
		}
		return r
	}
	test := append(record(3, func(c, p int) byte { return byte(c*100 + p%7) }), record(9, func(int, int) byte { return 1 })...)
	if err := os.WriteFile(filepath.Join(dir, "test_batch.bin"), test, 0o644); err != nil {
		t.Fatal(err)
	}
	ds := buildDataset(t, "CIFAR10", map[string]any{"data_root": dir, "test_mode": true})
	if ds.Len() != 2 {
		t.Fatalf("%d samples, want 2", ds.Len())
	}
	s, err := ds.Get(0, nil)
	if err != nil {
		t.Fatal(err)
	}
	// CHW planes become interleaved RGB: pixel 5 is (0+5, 100+5, 200+5).
	if s.Label != 3 || !reflect.DeepEqual(s.Image.Pix[15:18], []uint8{5, 105, 205}) {
		t.Errorf("label %d, pixel 5 = %v", s.Label, s.Image.Pix[15:18])
	}
	if _, err := registry.Build[*Dataset](&registry.Env{}, registry.NewSpec(registry.Datasets, "CIFAR10",
		map[string]any{"data_root": dir})); err == nil || !strings.Contains(err.Error(), "data_batch_1.bin") {
		t.Errorf("the training split without its batches: %v", err)
	}
}

func TestFashionMNIST(t *testing.T) {
	if _, err := os.Stat("/usr/share/datasets/fashion-mnist/t10k-labels-idx1-ubyte.gz"); err != nil {
		t.Skip("Fashion-MNIST is not installed (apt-get install dataset-fashion-mnist)")
	}
	ds := buildDataset(t, "FashionMNIST", map[string]any{"test_mode": true})
	if ds.Len() != 10000 {
		t.Fatalf("%d test images, want 10,000", ds.Len())
	}
	s, err := ds.Get(0, nil)
	if err != nil {
		t.Fatal(err)
	}
	// The first test image is an ankle boot (label 9), 28x28.
	if s.Label != 9 || s.Image.Width != 28 || s.Image.Height != 28 {
		t.Errorf("first test image: label %d, %dx%d", s.Label, s.Image.Width, s.Image.Height)
	}
	sub := buildDataset(t, "FashionMNIST", map[string]any{"num_samples": 100})
	if sub.Len() != 100 {
		t.Errorf("num_samples = 100 gives %d", sub.Len())
	}
}

func TestImageNetLayout(t *testing.T) {
	root := t.TempDir()
	load := []any{map[string]any{"type": "LoadImageFromFile"}}
	_, err := registry.Build[*Dataset](&registry.Env{}, registry.NewSpec(registry.Datasets, "ImageNet",
		map[string]any{"data_root": root, "ann_file": "meta/train.txt", "data_prefix": "train", "pipeline": load}))
	if err == nil || !strings.Contains(err.Error(), filepath.Join(root, "meta/train.txt")+" not found") ||
		!strings.Contains(err.Error(), "README") {
		t.Errorf("a missing annotation file: %v", err)
	}
	os.MkdirAll(filepath.Join(root, "meta"), 0o755)
	os.WriteFile(filepath.Join(root, "meta/train.txt"), []byte("n01/a.JPEG 0\n../../etc/passwd 1\n"), 0o644)
	_, err = registry.Build[*Dataset](&registry.Env{}, registry.NewSpec(registry.Datasets, "ImageNet",
		map[string]any{"data_root": root, "ann_file": "meta/train.txt", "data_prefix": "train", "pipeline": load}))
	if err == nil || !strings.Contains(err.Error(), "train.txt:2") || !strings.Contains(err.Error(), "leaves the data root") {
		t.Errorf("a path outside the data root: %v", err)
	}
}

func TestCIFAR10Folders(t *testing.T) {
	dir, err := shareddata.Dir("cifar10-jpg")
	if errors.Is(err, shareddata.ErrAbsent) {
		t.Skip(err)
	}
	if err != nil {
		t.Fatal(err)
	}
	ds := buildDataset(t, "CIFAR10", map[string]any{"data_root": dir, "test_mode": true, "num_samples": 30})
	if ds.Len() != 30 {
		t.Fatalf("%d samples, want 30", ds.Len())
	}
	// The prefix takes the classes in turn: airplane, automobile, bird, ...
	for i := 0; i < 30; i++ {
		s, err := ds.Get(i, nil)
		if err != nil {
			t.Fatal(err)
		}
		if s.Label != i%10 || s.Image.Width != 32 || s.Image.Height != 32 {
			t.Fatalf("sample %d: label %d, %dx%d", i, s.Label, s.Image.Width, s.Image.Height)
		}
	}
}

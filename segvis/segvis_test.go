package segvis

import (
	"bytes"
	"image"
	"image/color"
	"image/png"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/goselfsup/goselfsup/datasets"
)

// vocPalette is PascalVOCDataset's palette (mmseg's), as its metainfo holds it.
var vocPalette = func() Palette {
	var p Palette
	for _, c := range datasets.VOCSegPalette {
		p = append(p, [3]uint8{uint8(c[0]), uint8(c[1]), uint8(c[2])})
	}
	return p
}()

// The devkit's colour map begins with PascalVOCDataset's palette.
func TestVOCPalette(t *testing.T) {
	if got := VOCColormap(21); len(vocPalette) != 21 || !slices.Equal(got, vocPalette) {
		t.Errorf("VOCColormap(21) %v, PascalVOCDataset's palette %v", got, vocPalette)
	}
	if len(VOCFull) != 256 || VOCFull[255] != [3]uint8{224, 224, 192} || VOCFull[20] != vocPalette[20] {
		t.Errorf("VOCFull[255] = %v, [20] = %v", VOCFull[255], VOCFull[20])
	}
}

// A 2x2 image: labels 0 (black), 1, 15, and 255 (no colour: blended with black). The
// expected bytes are NumPy's (img * (1 - a) + mask * a).astype(np.uint8); at 0.8, 10 *
// (1 - 0.8) is 1.9999999999999996 and truncates to 1.
func TestOverlayPixels(t *testing.T) {
	rgb := []uint8{10, 20, 30, 200, 100, 50, 255, 255, 255, 7, 8, 9}
	seg := []uint8{0, 1, 15, 255}
	for _, tc := range []struct {
		alpha float64
		want  []uint8
	}{
		{AlphaMMSeg0, []uint8{5, 10, 15, 164, 50, 25, 223, 191, 191, 3, 4, 4}},
		{AlphaMMSeg1, []uint8{1, 3, 5, 142, 19, 9, 204, 153, 153, 1, 1, 1}},
	} {
		got, err := Overlay(rgb, 2, 2, seg, vocPalette, tc.alpha)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(got, tc.want) {
			t.Errorf("alpha %g: %v, want %v", tc.alpha, got, tc.want)
		}
		// int32 label maps blend the same.
		if got32, err := Overlay(rgb, 2, 2, []int32{0, 1, 15, 255}, vocPalette, tc.alpha); err != nil || !slices.Equal(got32, tc.want) {
			t.Errorf("alpha %g, int32 labels: %v (%v)", tc.alpha, got32, err)
		}
		var buf bytes.Buffer
		if err := EncodeOverlay(&buf, rgb, 2, 2, seg, vocPalette, tc.alpha); err != nil {
			t.Fatal(err)
		}
		img, err := png.Decode(&buf)
		if err != nil {
			t.Fatal(err)
		}
		for i := range 4 {
			r, g, b, a := img.At(i%2, i/2).RGBA()
			px := []uint8{uint8(r >> 8), uint8(g >> 8), uint8(b >> 8)}
			if !slices.Equal(px, tc.want[3*i:3*i+3]) || a != 0xffff {
				t.Errorf("alpha %g, PNG pixel %d: %v alpha %d, want %v", tc.alpha, i, px, a, tc.want[3*i:3*i+3])
			}
		}
	}
	if _, err := Overlay(rgb, 2, 2, seg[:3], vocPalette, 0.5); err == nil {
		t.Error("a label map of 3 pixels for 2x2 accepted")
	}
	if _, err := Overlay(rgb[:9], 2, 2, seg, vocPalette, 0.5); err == nil {
		t.Error("an image of 9 bytes for 2x2x3 accepted")
	}
}

func TestWriteLabelsPalettePNG(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "pred.png")
	seg := []uint8{0, 1, 15, 255, 20, 0}
	if err := WriteLabels(path, seg, 2, 3, VOCFull); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	img, err := png.Decode(f)
	if err != nil {
		t.Fatal(err)
	}
	p, ok := img.(*image.Paletted)
	if !ok {
		t.Fatalf("decoded a %T, not a palette image", img)
	}
	if p.Bounds().Dx() != 3 || p.Bounds().Dy() != 2 || !slices.Equal(p.Pix, seg) {
		t.Errorf("%v pixels %v, want 3x2 %v", p.Bounds(), p.Pix, seg)
	}
	if p.Palette[15] != (color.RGBA{192, 128, 128, 255}) || p.Palette[255] != (color.RGBA{224, 224, 192, 255}) {
		t.Errorf("palette 15 %v, 255 %v", p.Palette[15], p.Palette[255])
	}
	if err := WriteLabels(filepath.Join(dir, "bad.png"), seg, 2, 3, vocPalette); err == nil {
		t.Error("label 255 written with 21 colours")
	}
	if _, err := os.Stat(filepath.Join(dir, "bad.png")); err == nil {
		t.Error("a refused PNG was left on disk")
	}
}

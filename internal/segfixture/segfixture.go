// Package segfixture writes a small segmentation dataset for tests: photos whose classes a
// tiny network learns in a few steps, and their label maps.
package segfixture

import (
	"image"
	"image/color"
	"image/jpeg"
	"image/png"
	"os"
	"path/filepath"
	"testing"
)

// Classes are the fixture's classes, in label order.
var Classes = []string{"dark", "bright", "red"}

// Write writes n images of w x h (JPEG) and their label maps (grey PNG) under a new
// temporary folder's img and ann, and returns that folder: a dark left part (class 0), a
// bright right part (class 1), a red square (class 2) and an unlabelled top row (255). The
// images are named aa, ba, ..., za, ab, ...
func Write(t testing.TB, n, w, h int) string {
	t.Helper()
	root := t.TempDir()
	for _, d := range []string{"img", "ann"} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for i := range n {
		rgb := image.NewRGBA(image.Rect(0, 0, w, h))
		mask := image.NewGray(image.Rect(0, 0, w, h))
		split := w/3 + i%(w/3)
		sq := 2 + i%(h/2)
		for y := range h {
			for x := range w {
				c, l := color.RGBA{30, 30, 40, 255}, uint8(0)
				if x >= split {
					c, l = color.RGBA{220, 220, 200, 255}, 1
				}
				if x >= 2 && x < 8 && y >= sq && y < sq+6 {
					c, l = color.RGBA{230, 20, 20, 255}, 2
				}
				if y == 0 {
					l = 255
				}
				rgb.Set(x, y, c)
				mask.SetGray(x, y, color.Gray{l})
			}
		}
		name := string(rune('a'+i%26)) + string(rune('a'+i/26))
		writeFile(t, filepath.Join(root, "img", name+".jpg"), func(f *os.File) error { return jpeg.Encode(f, rgb, &jpeg.Options{Quality: 95}) })
		writeFile(t, filepath.Join(root, "ann", name+".png"), func(f *os.File) error { return png.Encode(f, mask) })
	}
	return root
}

func writeFile(t testing.TB, path string, write func(*os.File) error) {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := write(f); err != nil {
		t.Fatal(err)
	}
}

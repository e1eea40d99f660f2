//go:build cgo && (linux || darwin)

package jpegturbo

import (
	"bytes"
	"image"
	"image/color"
	"image/jpeg"
	"testing"
)

func encode(t *testing.T, w, h int) []byte {
	t.Helper()
	img := image.NewRGBA(image.Rect(0, 0, w, h))
	for y := range h {
		for x := range w {
			img.Set(x, y, color.RGBA{uint8(x * 7), uint8(y * 5), 90, 255})
		}
	}
	var buf bytes.Buffer
	if err := jpeg.Encode(&buf, img, &jpeg.Options{Quality: 95}); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// A handle that failed on damaged data must not poison the next decode: TurboJPEG reported
// 0x0 for valid files read with such a handle before failed handles were freed.
func TestDamagedDataDoesNotPoisonLaterDecodes(t *testing.T) {
	if !Available() {
		t.Skip("libturbojpeg is not installed")
	}
	good := encode(t, 24, 16)
	damaged := [][]byte{[]byte("\xff\xd8 not a JPEG"), good[:len(good)/2], good[:40]}
	for i := range 200 {
		if _, _, _, err := Decode(damaged[i%len(damaged)], 1); err == nil {
			t.Fatalf("damaged input %d decoded", i%len(damaged))
		}
		w, h, err := Size(good)
		if err != nil || w != 24 || h != 16 {
			t.Fatalf("iteration %d: Size = %dx%d, %v; want 24x16", i, w, h, err)
		}
		pix, w, h, err := Decode(good, 2)
		if err != nil || w != 12 || h != 8 || len(pix) != 12*8*3 {
			t.Fatalf("iteration %d: Decode at 1/2 = %dx%d, %v; want 12x8", i, w, h, err)
		}
	}
}

func TestRefusesBadScales(t *testing.T) {
	if _, _, _, err := Decode([]byte{0xff, 0xd8}, 3); err == nil {
		t.Error("scale 1/3 accepted")
	}
	if _, _, err := Size(nil); err == nil {
		t.Error("an empty JPEG accepted")
	}
}

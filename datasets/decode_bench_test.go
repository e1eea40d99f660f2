package datasets

import (
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/goselfsup/goselfsup/datasets/jpegturbo"
	"github.com/goselfsup/goselfsup/internal/shareddata"
)

// cocoPhotos reads the COCO128 photos of the test data (internal/shareddata; mostly 640x480
// JPEGs).
func cocoPhotos(tb testing.TB) [][]byte {
	tb.Helper()
	dir, err := shareddata.Dir("coco128-lightly")
	if errors.Is(err, shareddata.ErrAbsent) {
		tb.Skip(err)
	}
	if err != nil {
		tb.Fatal(err)
	}
	paths, _ := filepath.Glob(filepath.Join(dir, "images", "train2017", "*.jpg"))
	var out [][]byte
	for _, p := range paths {
		data, err := os.ReadFile(p)
		if err != nil {
			tb.Fatal(err)
		}
		out = append(out, data)
	}
	if len(out) == 0 {
		tb.Fatal("no COCO128 photos")
	}
	return out
}

// BenchmarkDecodeJPEG compares, in one run, Go's JPEG decoder with libjpeg-turbo at full
// size and at 1/2 and 1/4 (DCT-domain scaling), on the COCO128 photos: ns/op is per photo.
func BenchmarkDecodeJPEG(b *testing.B) {
	photos := cocoPhotos(b)
	for _, bc := range []struct {
		name   string
		denom  int
		goOnly bool
	}{{"go", 1, true}, {"turbo", 1, false}, {"turbo-half", 2, false}, {"turbo-quarter", 4, false}} {
		b.Run(bc.name, func(b *testing.B) {
			if !bc.goOnly && !jpegturbo.Available() {
				b.Skip("no libturbojpeg")
			}
			for i := range b.N {
				if _, _, err := decodeBytes(photos[i%len(photos)], bc.denom, bc.goOnly); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

package datasets

import "testing"

// BenchmarkResize shrinks a 480x370 crop to 224x224 with Pillow's bilinear filter.
func BenchmarkResize(b *testing.B) {
	m := testImage(480, 370, 1)
	for range b.N {
		if _, err := m.Resize(224, 224, Bilinear); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkAdjustHue shifts the hue of a 224x224 image.
func BenchmarkAdjustHue(b *testing.B) {
	m := testImage(224, 224, 2)
	for range b.N {
		adjustHue(m.Pix, 0.13)
	}
}

package detvis

import (
	"testing"

	"github.com/goselfsup/goselfsup/segvis"
)

// A box of label 0 on a black 8x6 image: its 2-pixel outline takes the palette's colour 1,
// the inside and outside stay black; a box past the border is clipped; an empty one is not
// drawn.
func TestDrawBoxes(t *testing.T) {
	const w, h = 8, 6
	p := segvis.Palette{{0, 0, 0}, {200, 10, 20}, {1, 2, 3}}
	rgb := make([]uint8, w*h*3)
	out, err := DrawBoxes(rgb, h, w, [][4]float32{{1, 0, 7, 6}, {5, 5, 5, 9}}, []int32{0, 1}, p)
	if err != nil {
		t.Fatal(err)
	}
	// Rows 0-1 and 4-5, columns 1-2 and 5-6 of the box x 1..6, y 0..5 are the outline.
	want := []string{
		".######.",
		".######.",
		".##..##.",
		".##..##.",
		".######.",
		".######.",
	}
	for y := range h {
		for x := range w {
			px := out[(y*w+x)*3 : (y*w+x)*3+3]
			drawn := px[0] == 200 && px[1] == 10 && px[2] == 20
			black := px[0] == 0 && px[1] == 0 && px[2] == 0
			if (want[y][x] == '#') != drawn || (want[y][x] == '.') != black {
				t.Errorf("pixel %d,%d = %v", x, y, px)
			}
		}
	}
	if rgb[3] != 0 {
		t.Error("the input was changed")
	}
	if _, err := DrawBoxes(rgb, h, w, [][4]float32{{0, 0, 1, 1}}, nil, p); err == nil {
		t.Error("boxes without labels were drawn")
	}
}

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

// A mask of label 1 blends its colour (1, 2, 3 -> p[2] = {100, 50, 250}) at half weight over
// a grey 10 image: round(10*0.5 + 100*0.5) = 55, round(10*0.5 + 50*0.5) = 30, round(10*0.5 +
// 250*0.5) = 130; pixels outside the mask keep 10, and the box outline (away from the
// mask) is drawn over it.
func TestDrawInstances(t *testing.T) {
	const w, h = 8, 6
	p := segvis.Palette{{0, 0, 0}, {200, 10, 20}, {100, 50, 250}}
	rgb := make([]uint8, w*h*3)
	for i := range rgb {
		rgb[i] = 10
	}
	mask := make([]uint8, w*h)
	mask[2*w+3], mask[3*w+4] = 1, 255
	out, err := DrawInstances(rgb, h, w, [][4]float32{{0, 0, 8, 6}}, []int32{1}, [][]uint8{mask}, p)
	if err != nil {
		t.Fatal(err)
	}
	px := func(x, y int) [3]uint8 { return [3]uint8(out[(y*w+x)*3 : (y*w+x)*3+3]) }
	for _, c := range []struct {
		x, y int
		want [3]uint8
	}{{3, 2, [3]uint8{55, 30, 130}}, {4, 3, [3]uint8{55, 30, 130}}, {3, 3, [3]uint8{10, 10, 10}}, {0, 0, [3]uint8{100, 50, 250}}} {
		if got := px(c.x, c.y); got != c.want {
			t.Errorf("pixel %d,%d = %v, want %v", c.x, c.y, got, c.want)
		}
	}
	if _, err := DrawInstances(rgb, h, w, [][4]float32{{0, 0, 1, 1}}, []int32{0}, [][]uint8{make([]uint8, 3)}, p); err == nil {
		t.Error("a mask of the wrong size was drawn")
	}
}

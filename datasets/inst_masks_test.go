package datasets

import (
	"errors"
	"math/rand/v2"
	"reflect"
	"strings"
	"testing"

	"github.com/goselfsup/goselfsup/registry"
)

// The resize goldens are TestMaskResizeNearestIsOpenCVs': OpenCV 4.6's INTER_NEAREST
// (cv2.resize of goldenMask), which mmcv's imresize with "nearest" calls for mmdet 2.x's
// BitmapMasks.rescale. The second bitmap is 19 - goldenMask: a pixelwise map commutes with
// a nearest resize, so its golden is 19 - the first's.
func TestInstanceMasksResizeIsOpenCVNearest(t *testing.T) {
	inv := func(p []uint8) []uint8 {
		out := make([]uint8, len(p))
		for i, v := range p {
			out[i] = 19 - v
		}
		return out
	}
	m := &InstanceMasks{N: 2, Width: 7, Height: 5, Pix: append(append([]uint8(nil), goldenMask...), inv(goldenMask)...)}
	for _, c := range []struct {
		w, h int
		want []uint8
	}{
		{11, 3, []uint8{15, 15, 4, 4, 3, 19, 19, 7, 14, 14, 8, 14, 14, 10, 10, 8, 7, 7, 6, 4, 4, 16, 5, 5, 16, 16, 0, 2, 2, 9, 14, 14, 6}},
		{3, 8, []uint8{15, 3, 7, 15, 3, 7, 14, 8, 6, 14, 8, 6, 7, 0, 6, 5, 0, 9, 5, 0, 9, 4, 9, 3}},
	} {
		got := m.ResizeNearest(c.w, c.h)
		if got.N != 2 || got.Width != c.w || got.Height != c.h {
			t.Fatalf("%dx%d: got %d of %dx%d", c.w, c.h, got.N, got.Width, got.Height)
		}
		if !reflect.DeepEqual(got.At(0), c.want) || !reflect.DeepEqual(got.At(1), inv(c.want)) {
			t.Errorf("%dx%d: got %v and %v, want %v and %v", c.w, c.h, got.At(0), got.At(1), c.want, inv(c.want))
		}
	}
}

// Flips by hand (np.flip on axis 1, 0, and both, as mmcv's imflip), on two 3x2 bitmaps:
//
//	a = 1 2 3    b = 7 8 9
//	    4 5 6        0 1 2
func TestInstanceMasksFlip(t *testing.T) {
	for _, c := range []struct {
		h, v bool
		a, b []uint8
	}{
		{true, false, []uint8{3, 2, 1, 6, 5, 4}, []uint8{9, 8, 7, 2, 1, 0}},
		{false, true, []uint8{4, 5, 6, 1, 2, 3}, []uint8{0, 1, 2, 7, 8, 9}},
		{true, true, []uint8{6, 5, 4, 3, 2, 1}, []uint8{2, 1, 0, 9, 8, 7}},
	} {
		m := &InstanceMasks{N: 2, Width: 3, Height: 2, Pix: []uint8{1, 2, 3, 4, 5, 6, 7, 8, 9, 0, 1, 2}}
		m.Flip(c.h, c.v)
		if !reflect.DeepEqual(m.At(0), c.a) || !reflect.DeepEqual(m.At(1), c.b) {
			t.Errorf("flip h %v v %v: %v %v, want %v %v", c.h, c.v, m.At(0), m.At(1), c.a, c.b)
		}
	}
}

func TestInstanceMasksPad(t *testing.T) {
	m := &InstanceMasks{N: 2, Width: 2, Height: 2, Pix: []uint8{1, 1, 0, 1, 0, 1, 1, 0}}
	got := m.Pad(3, 3, 0)
	want := []uint8{1, 1, 0, 0, 1, 0, 0, 0, 0, 0, 1, 0, 1, 0, 0, 0, 0, 0}
	if got.Width != 3 || got.Height != 3 || !reflect.DeepEqual(got.Pix, want) {
		t.Errorf("pad: %+v, want %v", got, want)
	}
}

// fakeMasks decodes to fixed bitmaps.
type fakeMasks struct {
	m   *InstanceMasks
	err error
}

func (f fakeMasks) DecodeMasks() (*InstanceMasks, error) { return f.m.Clone(), f.err }

// maskSample is a 5x3 detection sample with two boxes and their masks, as LoadImageFromFile
// leaves it: the image's pixels are arbitrary.
//
//	mask 0 = 1 1 0 0 0    box 0 [0, 0, 2, 2]
//	         1 1 0 0 0
//	         0 0 0 0 0
//	mask 1 = 0 0 0 0 1    box 1 [2, 1, 5, 3]
//	         0 0 1 1 1
//	         0 0 1 1 1
func maskSample() Sample {
	img := newImage(5, 3)
	for i := range img.Pix {
		img.Pix[i] = uint8(i)
	}
	m := &InstanceMasks{N: 2, Width: 5, Height: 3, Pix: []uint8{
		1, 1, 0, 0, 0, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0,
		0, 0, 0, 0, 1, 0, 0, 1, 1, 1, 0, 0, 1, 1, 1}}
	det := &DetAnnotation{Boxes: [][4]float32{{0, 0, 2, 2}, {2, 1, 5, 3}}, Labels: []int32{3, 1}, Masks: fakeMasks{m: m}}
	return Sample{Image: img, Path: "x.jpg", OriWidth: 5, OriHeight: 3, Det: det, Label: -1}
}

func TestMasksThroughTheDetPipeline(t *testing.T) {
	pipeline := []Transform{
		transform(t, map[string]any{"type": "LoadAnnotations", "with_bbox": true, "with_mask": true}),
		// keep_ratio in 10 x 6: factor min(10/5, 6/3) = 2, 10x6.
		transform(t, map[string]any{"type": "Resize", "img_scale": []int{10, 6}, "keep_ratio": true}),
		transform(t, map[string]any{"type": "RandomFlip", "flip_ratio": 1.0, "direction": "horizontal"}),
		transform(t, map[string]any{"type": "Pad", "size_divisor": 4}),
		transform(t, map[string]any{"type": "Collect", "keys": []string{"img", "gt_bboxes", "gt_labels", "gt_masks"}, "max_gt": 3}),
	}
	run := func(s Sample) Sample {
		t.Helper()
		for _, tr := range pipeline {
			if err := tr.Apply(&s, rand.New(rand.NewPCG(1, 2))); err != nil {
				t.Fatal(err)
			}
		}
		return s
	}
	s := run(maskSample())
	// Resize x2 (nearest: source x = floor(x / 2)), flip left-right in the 10x6 image, pad
	// to 12x8 with 0. Mask 0 covers x in [0, 4) of rows [0, 4); flipped: x in [6, 10).
	// Mask 1: (4, 0) -> x 8..9 of rows 0..1, flipped 0..1; x 4..9 of rows 2..5, flipped 0..5.
	want0, want1 := make([]uint8, 12*8), make([]uint8, 12*8)
	for y := range 8 {
		for x := range 12 {
			if y < 4 && x >= 6 && x < 10 {
				want0[y*12+x] = 1
			}
			if y < 2 && x < 2 || y >= 2 && y < 6 && x < 6 {
				want1[y*12+x] = 1
			}
		}
	}
	m := s.GTMasks
	if m == nil || m.N != 2 || m.Width != 12 || m.Height != 8 {
		t.Fatalf("masks after the pipeline: %+v", m)
	}
	if !reflect.DeepEqual(m.At(0), want0) || !reflect.DeepEqual(m.At(1), want1) {
		t.Errorf("masks\n%v\n%v\nwant\n%v\n%v", m.At(0), m.At(1), want0, want1)
	}
	// The boxes moved the same way: x2 then x' = 10 - x.
	if want := [][4]float32{{6, 0, 10, 4}, {0, 2, 6, 6}}; !reflect.DeepEqual(s.GT.Boxes, want) {
		t.Errorf("boxes %v, want %v", s.GT.Boxes, want)
	}
	if s.Det.Masks == nil || s.GT.Masks == nil {
		t.Error("the annotation lost its masks")
	}

	// A batch of this sample and one without boxes' masks beyond its slots: masks on the
	// batch's canvas (the larger, 12x8), MaxGT = 3 slots, the third zero.
	s2 := maskSample()
	s2.Det = &DetAnnotation{Boxes: [][4]float32{{2, 1, 5, 3}}, Labels: []int32{1},
		Masks: fakeMasks{m: &InstanceMasks{N: 1, Width: 5, Height: 3, Pix: maskSample().Det.Masks.(fakeMasks).m.At(1)}}}
	s2.Index = 1
	pipeline[1] = transform(t, map[string]any{"type": "Resize", "scale": []int{5, 3}}) // a 5x3 image, padded to 8x4
	s2 = run(s2)
	b, err := pack([]Sample{s, s2})
	if err != nil {
		t.Fatal(err)
	}
	d := b.Det
	if b.Width != 12 || b.Height != 8 || len(d.Masks) != 2*3*8*12 {
		t.Fatalf("batch %dx%d with %d mask bytes", b.Width, b.Height, len(d.Masks))
	}
	slot := func(i, j int) []uint8 { return d.Masks[(i*3+j)*96 : (i*3+j+1)*96] }
	if !reflect.DeepEqual(slot(0, 0), want0) || !reflect.DeepEqual(slot(0, 1), want1) || !reflect.DeepEqual(slot(0, 2), make([]uint8, 96)) {
		t.Error("image 0's slots are not its masks and a zero slot")
	}
	// Image 1: mask 1 flipped in the 5x3 image: rows 0: 1 0 0 0 0, rows 1-2: 1 1 1 0 0; on
	// the 12x8 canvas, zero elsewhere; slots 1 and 2 zero.
	want := make([]uint8, 96)
	want[0] = 1
	for y := 1; y < 3; y++ {
		for x := range 3 {
			want[y*12+x] = 1
		}
	}
	if !reflect.DeepEqual(slot(1, 0), want) || !reflect.DeepEqual(slot(1, 1), make([]uint8, 96)) || !reflect.DeepEqual(slot(1, 2), make([]uint8, 96)) {
		t.Errorf("image 1's slots: %v %v %v, want %v and zeros", slot(1, 0), slot(1, 1), slot(1, 2), want)
	}
	if d.Counts[0] != 2 || d.Counts[1] != 1 {
		t.Errorf("counts %v", d.Counts)
	}
}

func TestMaskLoadingErrors(t *testing.T) {
	load := transform(t, map[string]any{"type": "LoadAnnotations", "with_mask": true})
	rng := rand.New(rand.NewPCG(1, 2))

	// The annotation's size is not the decoded image's: a LoadError naming the image.
	s := maskSample()
	s.Image = newImage(6, 3)
	s.OriWidth = 6
	var le *LoadError
	if err := load.Apply(&s, rng); !errors.As(err, &le) || le.Path != "x.jpg" || !strings.Contains(err.Error(), "5x3") {
		t.Errorf("masks of another size: %v", err)
	}
	// A decoding error is a LoadError too.
	s = maskSample()
	s.Det.Masks = fakeMasks{err: errors.New("bad RLE")}
	if err := load.Apply(&s, rng); !errors.As(err, &le) || !strings.Contains(err.Error(), "bad RLE") {
		t.Errorf("a decoding error: %v", err)
	}
	// A dataset without masks.
	s = maskSample()
	s.Det.Masks = nil
	if err := load.Apply(&s, rng); err == nil || !strings.Contains(err.Error(), "CocoDataset") {
		t.Errorf("no masks: %v", err)
	}
	// After a resize.
	s = maskSample()
	if err := transform(t, map[string]any{"type": "Resize", "scale": []int{10, 6}}).Apply(&s, rng); err != nil {
		t.Fatal(err)
	}
	if err := load.Apply(&s, rng); err == nil || !strings.Contains(err.Error(), "directly after LoadImageFromFile") {
		t.Errorf("with_mask after Resize: %v", err)
	}
	// Configurations.
	for _, c := range []map[string]any{
		{"with_mask": true, "poly2mask": false},
		{"with_mask": true, "with_bbox": false},
	} {
		c["type"] = "LoadAnnotations"
		if err := buildTransformErr(c); err == nil {
			t.Errorf("%v: no error", c)
		}
	}
	// Pad's masks key.
	s = maskSample()
	load.Apply(&s, rng)
	if err := transform(t, map[string]any{"type": "Pad", "size": []int{6, 4}, "pad_val": map[string]any{"img": 0, "masks": 7}}).Apply(&s, rng); err != nil {
		t.Fatal(err)
	}
	if p := s.GTMasks.At(1); p[5] != 7 || p[4] != 1 || p[23] != 7 {
		t.Errorf("masks padded with 7: %v", p)
	}
}

// buildTransformErr builds the transform of a table and returns the error.
func buildTransformErr(table map[string]any) error {
	rest := map[string]any{}
	for k, v := range table {
		if k != "type" {
			rest[k] = v
		}
	}
	_, err := registry.Build[Transform](&registry.Env{}, registry.NewSpec(registry.Transforms, table["type"].(string), rest))
	return err
}

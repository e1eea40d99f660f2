package coco

import (
	"math"
	"strings"
	"testing"
)

func box(x, y, w, h float64) *[4]float64 { return &[4]float64{x, y, w, h} }

// handGT builds a dataset of two 300x300 images (ids 1, 2), categories 1 and 2 and anns,
// numbered from 1.
func handGT(anns ...Annotation) *Dataset {
	d := &Dataset{
		Images:     []Image{{ID: 1, Width: 300, Height: 300}, {ID: 2, Width: 300, Height: 300}},
		Categories: []Category{{ID: 1, Name: "a"}, {ID: 2, Name: "b"}},
	}
	for i, a := range anns {
		a.ID = int64(i + 1)
		d.Annotations = append(d.Annotations, a)
	}
	return d
}

func evalBox(t *testing.T, gt *Dataset, rs []Result) *Eval {
	t.Helper()
	e, err := Evaluate(gt, rs, DefaultParams("bbox"))
	if err != nil {
		t.Fatal(err)
	}
	return e
}

func near(a, b float64) bool { return math.Abs(a-b) < 1e-12 }

// TestEvalCrowd: GT A [0,0,10,10] and a crowd region [20,0,40,40] in category 1. Detections
// by score: d2 (.95) inside the crowd ([25,5,10,10]: IoU with a crowd = intersection over
// the detection's area = 1), d1 (.9) exactly A, d3 (.7) far away. d2 matches the crowd and
// is ignored, so the list is d1 TP, d3 FP: recall [1, 1], precision [1, .5], every recall
// threshold maps to index 0 and AP = 1 at every IoU. (Were d2 a false positive, precision
// would be [0, .5, 1/3] over recall [0, 1, 1]: AP .5.) Recall 1, but AR@1 keeps d2 alone
// (ignored), so 0. Area small: the same (A and d3 have area 100); medium and large: A is
// out of range and ignored, no GT left: -1.
func TestEvalCrowd(t *testing.T) {
	gt := handGT(
		Annotation{ImageID: 1, CategoryID: 1, BBox: [4]float64{0, 0, 10, 10}, Area: 100},
		Annotation{ImageID: 1, CategoryID: 1, BBox: [4]float64{20, 0, 40, 40}, Area: 1600, IsCrowd: 1},
	)
	e := evalBox(t, gt, []Result{
		{ImageID: 1, CategoryID: 1, BBox: box(0, 0, 10, 10), Score: .9},
		{ImageID: 1, CategoryID: 1, BBox: box(25, 5, 10, 10), Score: .95},
		{ImageID: 1, CategoryID: 1, BBox: box(200, 200, 10, 10), Score: .7},
	})
	want := []float64{1, 1, 1, 1, -1, -1, 0, 1, 1, 1, -1, -1}
	for i, w := range want {
		if !near(e.Stats[i], w) {
			t.Errorf("stats[%d] = %v, want %v", i, e.Stats[i], w)
		}
	}
}

// TestEvalAreaRanges: GT s [0,0,10,10] (area 100, small) and l [0,50,100,100] whose area
// field is 5000 (medium, although its box is 100x100: ranges use the field). Detections: d3
// (.95) [200,200,8,8] (area 64, no match), d1 (.9) = l's box (area 10000), d2 (.8) = s's box.
//
//   - all: d3 FP, d1 TP, d2 TP: recall [0, .5, 1], precision [0, .5, 2/3], envelope 2/3
//     throughout: AP 2/3 (at every IoU, the matches being exact).
//   - small: l is ignored, so d1 (matched to it) is ignored; d3 (area 64, in range) stays a
//     FP: d3 FP, d2 TP: recall [0, 1], precision [0, .5], envelope .5: AP .5.
//   - medium: s is ignored, d2 with it; d3 (area 64, out of range, unmatched) is ignored:
//     d1 TP alone: AP 1.
//   - large: both GT out of range: -1.
//
// Recall: all 1, small 1, medium 1, large -1; AR@1: one detection per image, d3, matches
// nothing: 0.
func TestEvalAreaRanges(t *testing.T) {
	gt := handGT(
		Annotation{ImageID: 1, CategoryID: 1, BBox: [4]float64{0, 0, 10, 10}, Area: 100},
		Annotation{ImageID: 1, CategoryID: 1, BBox: [4]float64{0, 50, 100, 100}, Area: 5000},
	)
	e := evalBox(t, gt, []Result{
		{ImageID: 1, CategoryID: 1, BBox: box(0, 50, 100, 100), Score: .9},
		{ImageID: 1, CategoryID: 1, BBox: box(0, 0, 10, 10), Score: .8},
		{ImageID: 1, CategoryID: 1, BBox: box(200, 200, 8, 8), Score: .95},
	})
	want := []float64{2. / 3, 2. / 3, 2. / 3, .5, 1, -1, 0, 1, 1, 1, 1, -1}
	for i, w := range want {
		if math.Abs(e.Stats[i]-w) > 1e-9 { // precision carries np.spacing(1) in its denominator
			t.Errorf("stats[%d] = %v, want %v", i, e.Stats[i], w)
		}
	}
}

// TestEvalTiesAndEmpty: GT g [0,0,10,10] in image 1, category 1; image 2 has no GT.
// Detections a = g's box (TP) and b (FP), both with score .5.
//
//   - a and b in image 1: the stable sort keeps the results' order. a first: precision [1,
//     .5] over recall [1, 1]: AP 1; b first: precision [0, .5] over recall [0, 1], envelope
//     .5: AP .5.
//   - b in image 2 (an image with detections and no GT): the images are concatenated in id
//     order before the stable sort, so a comes first whatever the results' order: AP 1.
//
// Category 2 has detections but no GT: its precision and recall stay -1 and do not enter
// the means.
func TestEvalTiesAndEmpty(t *testing.T) {
	gt := handGT(Annotation{ImageID: 1, CategoryID: 1, BBox: [4]float64{0, 0, 10, 10}, Area: 100})
	a := Result{ImageID: 1, CategoryID: 1, BBox: box(0, 0, 10, 10), Score: .5}
	b := Result{ImageID: 1, CategoryID: 1, BBox: box(50, 50, 10, 10), Score: .5}
	b2 := b
	b2.ImageID = 2
	c := Result{ImageID: 1, CategoryID: 2, BBox: box(0, 0, 10, 10), Score: .9}
	for _, tc := range []struct {
		name string
		rs   []Result
		ap   float64
	}{
		{"a, b", []Result{a, b, c}, 1},
		{"b, a", []Result{b, a, c}, .5},
		{"b in image 2, a", []Result{b2, a, c}, 1},
		{"a, b in image 2", []Result{a, b2, c}, 1},
	} {
		e := evalBox(t, gt, tc.rs)
		if !near(e.Stats[0], tc.ap) || !near(e.Stats[1], tc.ap) {
			t.Errorf("%s: AP %v, AP50 %v, want %v", tc.name, e.Stats[0], e.Stats[1], tc.ap)
		}
		for ti := range e.Params.IoUThrs {
			for r := range e.Params.RecThrs {
				if v := e.PrecisionAt(ti, r, 1, 0, 2); v != -1 {
					t.Fatalf("%s: category 2 precision %v, want -1", tc.name, v)
				}
			}
			if v := e.RecallAt(ti, 1, 0, 2); v != -1 {
				t.Fatalf("%s: category 2 recall %v, want -1", tc.name, v)
			}
		}
	}
}

// TestEvalThreshold: a detection [0,0,10,5] on GT [0,0,10,10] has IoU 50/100 = .5 exactly,
// which matches at threshold .5 (IoU >= threshold) and at no other: AP50 1, AP75 0, AP the
// mean over the 10 thresholds .1, AR .1.
func TestEvalThreshold(t *testing.T) {
	gt := handGT(Annotation{ImageID: 1, CategoryID: 1, BBox: [4]float64{0, 0, 10, 10}, Area: 100})
	e := evalBox(t, gt, []Result{{ImageID: 1, CategoryID: 1, BBox: box(0, 0, 10, 5), Score: .5}})
	if !near(e.Stats[0], .1) || !near(e.Stats[1], 1) || e.Stats[2] != 0 || !near(e.Stats[8], .1) {
		t.Errorf("stats %v, want AP .1, AP50 1, AP75 0, AR .1", e.Stats)
	}
}

// TestEvalSegm: a GT square of pixels 0..9 given as a polygon [-.5,-.5 .. 9.5,9.5] (pixel
// centres inside) and a detection mask covering columns 0..9 of rows 0..4: IoU 50/100 = .5
// as in TestEvalThreshold. The detection's box [0,0,10,5] is recomputed from its mask.
func TestEvalSegm(t *testing.T) {
	gt := handGT(Annotation{ImageID: 1, CategoryID: 1, BBox: [4]float64{0, 0, 10, 10}, Area: 100,
		Segmentation: Segmentation{Polygons: [][]float64{{-.5, -.5, -.5, 9.5, 9.5, 9.5, 9.5, -.5}}}})
	r, err := gt.Annotations[0].Segmentation.ToRLE(300, 300)
	if err != nil || r.Area() != 100 {
		t.Fatalf("GT polygon: area %d, %v; want 100", r.Area(), err)
	}
	m := make([]uint8, 300*300)
	for y := range 5 {
		for x := range 10 {
			m[y*300+x] = 1
		}
	}
	dt := Encode(m, 300, 300)
	e, err := Evaluate(gt, []Result{{ImageID: 1, CategoryID: 1, Segmentation: &dt, Score: .5}}, DefaultParams("segm"))
	if err != nil {
		t.Fatal(err)
	}
	if !near(e.Stats[0], .1) || !near(e.Stats[1], 1) || e.Stats[2] != 0 {
		t.Errorf("stats %v, want AP .1, AP50 1, AP75 0", e.Stats)
	}
}

func TestEvalErrorsAndSummary(t *testing.T) {
	gt := handGT(Annotation{ImageID: 1, CategoryID: 1, BBox: [4]float64{0, 0, 10, 10}, Area: 100})
	if _, err := Evaluate(gt, []Result{{ImageID: 3, CategoryID: 1, BBox: box(0, 0, 1, 1)}}, DefaultParams("bbox")); err == nil || !strings.Contains(err.Error(), "image 3") {
		t.Errorf("unknown image: %v", err)
	}
	if _, err := Evaluate(gt, []Result{{ImageID: 1, CategoryID: 1, BBox: box(0, 0, 1, 1)}, {ImageID: 1, CategoryID: 1}}, DefaultParams("bbox")); err == nil {
		t.Error("second result without a box: no error")
	}
	if _, err := Evaluate(gt, nil, DefaultParams("keypoints")); err == nil {
		t.Error("keypoints: no error")
	}
	e, err := Evaluate(gt, nil, DefaultParams("bbox"))
	if err != nil {
		t.Fatal(err)
	}
	if e.Stats[0] != 0 || e.Stats[8] != 0 {
		t.Errorf("no results: stats %v, want AP and AR 0", e.Stats)
	}
	lines := strings.Split(strings.TrimRight(e.Summary(), "\n"), "\n")
	if len(lines) != 12 || lines[0] != " Average Precision  (AP) @[ IoU=0.50:0.95 | area=   all | maxDets=100 ] = 0.000" ||
		lines[4] != " Average Precision  (AP) @[ IoU=0.50:0.95 | area=medium | maxDets=100 ] = -1.000" ||
		lines[6] != " Average Recall     (AR) @[ IoU=0.50:0.95 | area=   all | maxDets=  1 ] = 0.000" {
		t.Errorf("summary:\n%s", e.Summary())
	}
}

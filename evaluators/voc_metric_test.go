package evaluators

import (
	"encoding/json"
	"math"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/goselfsup/goselfsup/internal/pyref"
	"github.com/goselfsup/goselfsup/registry"
)

func newVOCMetric(t *testing.T, table map[string]any, classes []string) *VOCMetric {
	t.Helper()
	c, err := registry.Default.Decode(registry.NewSpec(registry.Evaluators, "VOCMetric", table))
	if err != nil {
		t.Fatal(err)
	}
	m, err := c.(*VOCMetricConfig).New(classes)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// Three images worked by hand, legacy coordinates (widths + 1).
//
// Class a: image 1 has the box G1 [0 0 9 9] and the ignored (difficult) box I1 [20 20 29
// 29]; detections d1 = G1 at 0.9 (IoU 1: TP), d2 = I1 at 0.8 (matches an ignored box:
// neither), d3 = G1 at 0.7 (G1 is taken: FP). Image 2 has G2 [0 0 9 9] and d4 [50 50 59 59]
// at 0.6 (IoU 0: FP). Image 3 has no box and d5 at 0.85 (FP). By score: d1 TP, d5 FP, d2 -,
// d3 FP, d4 FP; 2 boxes, so recall 0.5 throughout and precision 1, 1/2, 1/2, 1/3, 1/4.
// 11 points: thresholds 0 to 0.5 (6 of them) see precision 1, 0.6 to 1 see no recall:
// AP = 6/11. Area: the envelope is 1 up to recall 0.5, and nothing after: AP = 0.5.
//
// Class b: image 1 has [0 0 9 9] (area 10 x 10 = 100) and a detection [0 0 9 4] (area 50,
// inside it): IoU = 50 / 100 = 0.5 exactly, which matches (>=): AP 1. Without legacy
// coordinates the areas are 81 and 36: IoU 0.44, a FP: AP 0.
//
// Class c: no box, one detection: AP 0, left out of the mean. mAP (11 points) = (6/11 +
// 1) / 2 = 0.7727; area: (0.5 + 1) / 2 = 0.75.
func TestVOCMetricByHand(t *testing.T) {
	classes := []string{"a", "b", "c"}
	images := []struct {
		det Detections
		gt  GroundTruth
	}{
		{Detections{Boxes: [][4]float32{{0, 0, 9, 9}, {20, 20, 29, 29}, {0, 0, 9, 9}, {0, 0, 9, 4}, {3, 3, 7, 7}},
			Scores: []float32{0.9, 0.8, 0.7, 0.5, 0.3}, Labels: []int32{0, 0, 0, 1, 2}},
			GroundTruth{Boxes: [][4]float32{{0, 0, 9, 9}, {0, 0, 9, 9}}, Labels: []int32{0, 1},
				IgnoredBoxes: [][4]float32{{20, 20, 29, 29}}, IgnoredLabels: []int32{0}}},
		{Detections{Boxes: [][4]float32{{50, 50, 59, 59}}, Scores: []float32{0.6}, Labels: []int32{0}},
			GroundTruth{Boxes: [][4]float32{{0, 0, 9, 9}}, Labels: []int32{0}}},
		{Detections{Boxes: [][4]float32{{0, 0, 9, 9}}, Scores: []float32{0.85}, Labels: []int32{0}}, GroundTruth{}},
	}
	for _, tc := range []struct {
		mode   string
		legacy bool
		apA    float64
		apB    float64
	}{
		{"11points", true, 6.0 / 11, 1},
		{"area", true, 0.5, 1},
		{"11points", false, 6.0 / 11, 0},
	} {
		m := newVOCMetric(t, map[string]any{"eval_mode": tc.mode, "use_legacy_coordinate": tc.legacy}, classes)
		for _, im := range images {
			if err := m.Add(im.det, im.gt); err != nil {
				t.Fatal(err)
			}
		}
		r := m.Compute()
		per := r.PerClass[0]
		near := func(got, want float64) bool { return math.Abs(got-want) < 1e-6 }
		if !near(per[0].AP, tc.apA) || !near(per[1].AP, tc.apB) || per[2].AP != 0 {
			t.Errorf("%s legacy %v: APs %v, want a %v, b %v, c 0", tc.mode, tc.legacy, per, tc.apA, tc.apB)
		}
		if per[0].NumGTs != 2 || per[0].NumDets != 5 || per[0].Recall != 0.5 || per[2].NumGTs != 0 || per[2].NumDets != 1 {
			t.Errorf("%s: counts %+v", tc.mode, per)
		}
		want := (tc.apA + tc.apB) / 2
		metrics, table := m.Result()
		if !near(metrics["mAP"], want) || metrics["AP50"] != round3(want) || len(metrics) != 2 {
			t.Errorf("%s legacy %v: metrics %v, want mAP %v", tc.mode, tc.legacy, metrics, want)
		}
		if tc.mode == "11points" && tc.legacy {
			wantTable := strings.Join([]string{
				"---------------iou_thr: 0.5---------------",
				"+-------+-----+------+--------+-------+",
				"| class | gts | dets | recall | ap    |",
				"+-------+-----+------+--------+-------+",
				"| a     | 2   | 5    | 0.500  | 0.545 |",
				"| b     | 1   | 1    | 1.000  | 1.000 |",
				"| c     | 0   | 1    | 0.000  | 0.000 |",
				"+-------+-----+------+--------+-------+",
				"| mAP   |     |      |        | 0.773 |",
				"+-------+-----+------+--------+-------+",
			}, "\n")
			if table != wantTable {
				t.Errorf("table\n%s\nwant\n%s", table, wantTable)
			}
		}
	}
}

func TestVOCMetricRefuses(t *testing.T) {
	m := newVOCMetric(t, map[string]any{}, []string{"a", "b"})
	for _, tc := range []struct {
		det Detections
		gt  GroundTruth
	}{
		{Detections{Boxes: [][4]float32{{0, 0, 1, 1}}, Scores: []float32{1}, Labels: []int32{2}}, GroundTruth{}},
		{Detections{Boxes: [][4]float32{{0, 0, 1, 1}}, Scores: []float32{1, 2}, Labels: []int32{0}}, GroundTruth{}},
		{Detections{}, GroundTruth{Boxes: [][4]float32{{0, 0, 1, 1}}, Labels: []int32{-1}}},
		{Detections{}, GroundTruth{IgnoredBoxes: [][4]float32{{0, 0, 1, 1}}}},
	} {
		if err := m.Add(tc.det, tc.gt); err == nil {
			t.Errorf("%+v accepted", tc)
		}
	}
	if m.Images() != 0 {
		t.Errorf("refused images were kept: %d", m.Images())
	}
	for _, bad := range []map[string]any{{"eval_mode": "12points"}, {"metric": "recall"}, {"iou_thrs": []any{}}, {"iou_thrs": 1.5}} {
		if _, err := registry.Default.Decode(registry.NewSpec(registry.Evaluators, "VOCMetric", bad)); err == nil {
			t.Errorf("VOCMetric %v decoded", bad)
		}
	}
	var _ DetMetric = &VOCMetricConfig{}
}

type refImage struct {
	DetBoxes  [][4]float32 `json:"det_boxes"`
	DetScores []float32    `json:"det_scores"`
	DetLabels []int32      `json:"det_labels"`
	GTBoxes   [][4]float32 `json:"gt_boxes"`
	GTLabels  []int32      `json:"gt_labels"`
	IgnBoxes  [][4]float32 `json:"ign_boxes"`
	IgnLabels []int32      `json:"ign_labels"`
}

// randomBox is a box of integer or half-integer corners inside 100 x 80.
func randomBox(rng *rand.Rand) [4]float32 {
	x1, y1 := float32(rng.IntN(160))/2, float32(rng.IntN(120))/2
	return [4]float32{x1, y1, x1 + float32(1+rng.IntN(60))/2, y1 + float32(1+rng.IntN(60))/2}
}

// Random images against NumPy (benchmarks/voc_map_reference.py, mmdet's eval_map with stable
// sorts): difficult boxes, images without boxes, a class without detections (3), a class
// without boxes (2), and scores from ten values, so that many detections tie, inside an
// image and across images.
func TestVOCMetricAgreesWithNumPy(t *testing.T) {
	python, err := pyref.Python("numpy")
	if err != nil {
		t.Skip(err)
	}
	script, err := filepath.Abs(filepath.Join("..", "benchmarks", "voc_map_reference.py"))
	if err != nil {
		t.Fatal(err)
	}
	const nc = 5
	classes := []string{"c0", "c1", "c2", "c3", "c4"}
	rng := rand.New(rand.NewPCG(7, 11))
	var images []refImage
	for i := range 40 {
		var im refImage
		if i%7 != 3 { // some images have no box
			for range 1 + rng.IntN(6) {
				c := []int32{0, 1, 3, 4}[rng.IntN(4)] // never class 2
				b := randomBox(rng)
				if rng.IntN(5) == 0 {
					im.IgnBoxes, im.IgnLabels = append(im.IgnBoxes, b), append(im.IgnLabels, c)
				} else {
					im.GTBoxes, im.GTLabels = append(im.GTBoxes, b), append(im.GTLabels, c)
				}
			}
		}
		add := func(b [4]float32, c int32) {
			if c == 3 {
				return // class 3 is never detected
			}
			im.DetBoxes = append(im.DetBoxes, b)
			im.DetScores = append(im.DetScores, float32(1+rng.IntN(10))/10)
			im.DetLabels = append(im.DetLabels, c)
		}
		for k, b := range append(append([][4]float32(nil), im.GTBoxes...), im.IgnBoxes...) {
			c := append(append([]int32(nil), im.GTLabels...), im.IgnLabels...)[k]
			for range rng.IntN(3) { // near copies: true positives, duplicates, IoU near the thresholds
				j := [4]float32{float32(rng.IntN(7)-3) / 2, float32(rng.IntN(7)-3) / 2, float32(rng.IntN(7)-3) / 2, float32(rng.IntN(7)-3) / 2}
				add([4]float32{b[0] + j[0], b[1] + j[1], b[2] + j[2], b[3] + j[3]}, c)
			}
		}
		for range rng.IntN(5) {
			add(randomBox(rng), int32(rng.IntN(nc)))
		}
		images = append(images, im)
	}
	for _, tc := range []struct {
		mode   string
		legacy bool
	}{{"11points", true}, {"area", true}, {"11points", false}} {
		thrs := []float64{0.5, 0.7, 0.75}
		m := newVOCMetric(t, map[string]any{"eval_mode": tc.mode, "use_legacy_coordinate": tc.legacy, "iou_thrs": thrs}, classes)
		for _, im := range images {
			if err := m.Add(Detections{Boxes: im.DetBoxes, Scores: im.DetScores, Labels: im.DetLabels}, GroundTruth{Boxes: im.GTBoxes, Labels: im.GTLabels, IgnoredBoxes: im.IgnBoxes, IgnoredLabels: im.IgnLabels}); err != nil {
				t.Fatal(err)
			}
		}
		r := m.Compute()
		in, err := json.Marshal(map[string]any{"num_classes": nc, "iou_thrs": thrs, "mode": tc.mode, "legacy": tc.legacy, "images": images})
		if err != nil {
			t.Fatal(err)
		}
		path := filepath.Join(t.TempDir(), "in.json")
		if err := os.WriteFile(path, in, 0o644); err != nil {
			t.Fatal(err)
		}
		out, err := exec.Command(python, script, path).Output()
		if err != nil {
			t.Fatal(err)
		}
		var want struct {
			Results []struct {
				MeanAP  float64 `json:"mean_ap"`
				Classes []struct {
					NumGTs  int     `json:"num_gts"`
					NumDets int     `json:"num_dets"`
					Recall  float64 `json:"recall"`
					AP      float64 `json:"ap"`
				} `json:"classes"`
			} `json:"results"`
		}
		if err := json.Unmarshal(out, &want); err != nil {
			t.Fatal(err)
		}
		// 11 points: the same float32 operations, the same AP; area: NumPy's pairwise sum of
		// float64 terms may round differently before the float32 result.
		apTol := 0.0
		if tc.mode == "area" {
			apTol = 1e-6
		}
		nonTrivial := 0
		for i, w := range want.Results {
			if math.Abs(r.MeanAP[i]-w.MeanAP) > 1e-6 {
				t.Errorf("%s legacy %v thr %g: mAP %v, NumPy's %v", tc.mode, tc.legacy, thrs[i], r.MeanAP[i], w.MeanAP)
			}
			for c, wc := range w.Classes {
				g := r.PerClass[i][c]
				if g.NumGTs != wc.NumGTs || g.NumDets != wc.NumDets || math.Abs(g.Recall-wc.Recall) > 1e-12 || math.Abs(g.AP-wc.AP) > apTol {
					t.Errorf("%s legacy %v thr %g class %d: %+v, NumPy's %+v", tc.mode, tc.legacy, thrs[i], c, g, wc)
				}
				if wc.AP > 0.05 && wc.AP < 0.95 {
					nonTrivial++
				}
			}
		}
		if nonTrivial < 4 {
			t.Errorf("%s: only %d class APs are neither about 0 nor 1: the test data is too easy", tc.mode, nonTrivial)
		}
		if r.PerClass[0][2].NumGTs != 0 || r.PerClass[0][2].NumDets == 0 || r.PerClass[0][3].NumDets != 0 || r.PerClass[0][3].NumGTs == 0 {
			t.Errorf("the data lacks a class without boxes or one without detections: %+v", r.PerClass[0])
		}
	}
}

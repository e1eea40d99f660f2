package evaluators

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/goselfsup/goselfsup/coco"
	"github.com/goselfsup/goselfsup/registry"
)

// cocoGT is a two-image COCO dataset as CocoMetric sees it: categories 3 ("cat") and 7
// ("dog") are labels 0 and 1.
type cocoGT struct{ ds *coco.Dataset }

func (g cocoGT) COCO() *coco.Dataset { return g.ds }
func (g cocoGT) ImageID(i int) int64 { return g.ds.Images[i].ID }
func (g cocoGT) CatIDs() []int64     { return []int64{3, 7} }
func (g cocoGT) Classes() []string   { return []string{"cat", "dog"} }

type classesOnly []string

func (c classesOnly) Classes() []string { return c }

// square returns the mask of the square x0, y0 to x0+s, y0+s in a 20 x 20 image.
func square(x0, y0, s int) []uint8 {
	m := make([]uint8, 20*20)
	for y := y0; y < y0+s; y++ {
		for x := x0; x < x0+s; x++ {
			m[y*20+x] = 1
		}
	}
	return m
}

// Image 10 has a cat (a 10 x 10 square, area 100: "small", under 32^2) and image 20 a dog.
// The cat is found exactly, box and mask; the dog's detection is a 10 x 10 square shifted by
// 5 pixels in x: IoU 50 / 150 = 1/3 for both box and mask, under every threshold. So cat's
// AP is 1 at every IoU threshold, dog's 0: mAP = mAP_50 = mAP_75 = (1 + 0) / 2 = 0.5, and
// mAP_s the same (both objects are small); medium and large have no ground truth (-1).
func TestCocoMetric(t *testing.T) {
	cat, dog := coco.Encode(square(2, 2, 10), 20, 20), coco.Encode(square(5, 5, 10), 20, 20)
	ds := &coco.Dataset{
		Images:     []coco.Image{{ID: 10, FileName: "a.jpg", Width: 20, Height: 20}, {ID: 20, FileName: "b.jpg", Width: 20, Height: 20}},
		Categories: []coco.Category{{ID: 3, Name: "cat"}, {ID: 7, Name: "dog"}},
		Annotations: []coco.Annotation{
			{ID: 1, ImageID: 10, CategoryID: 3, BBox: [4]float64{2, 2, 10, 10}, Area: 100, Segmentation: coco.Segmentation{RLE: &cat}},
			{ID: 2, ImageID: 20, CategoryID: 7, BBox: [4]float64{5, 5, 10, 10}, Area: 100, Segmentation: coco.Segmentation{RLE: &dog}},
		},
	}
	c := &CocoMetricConfig{Metric: registry.StringList{"bbox", "segm"}, ProposalNums: []int{100, 300, 1000}, Classwise: true}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	if _, err := c.NewDetAccumulator(classesOnly{"cat", "dog"}); err == nil || !strings.Contains(err.Error(), "CocoDataset") {
		t.Fatalf("a dataset without a COCO file: %v", err)
	}
	acc, err := c.NewDetAccumulator(cocoGT{ds})
	if err != nil {
		t.Fatal(err)
	}
	shifted := coco.Encode(square(10, 5, 10), 20, 20)
	add := func(i int, box [4]float32, label int32, m coco.RLE) {
		t.Helper()
		d := Detections{Boxes: [][4]float32{box}, Scores: []float32{0.9}, Labels: []int32{label}, Masks: []coco.RLE{m}}
		if err := acc.Add(d, GroundTruth{Index: i}); err != nil {
			t.Fatal(err)
		}
	}
	add(0, [4]float32{2, 2, 12, 12}, 0, cat)
	add(1, [4]float32{10, 5, 20, 15}, 1, shifted)
	metrics, table := acc.Result()
	for _, typ := range []string{"bbox", "segm"} {
		for item, want := range map[string]float64{"mAP": 0.5, "mAP_50": 0.5, "mAP_75": 0.5, "mAP_s": 0.5, "mAP_m": -1, "mAP_l": -1} {
			if got := metrics[typ+"_"+item]; got != want {
				t.Errorf("%s_%s = %v, want %v", typ, item, got, want)
			}
		}
	}
	for _, s := range []string{"Evaluating bbox", "Evaluating segm", "Average Precision", "cat", "1.000", "dog", "0.000"} {
		if !strings.Contains(table, s) {
			t.Errorf("the table has no %q:\n%s", s, table)
		}
	}
	files, err := acc.(*CocoMetric).WriteResults(filepath.Join(t.TempDir(), "val"))
	if err != nil || len(files) != 2 {
		t.Fatalf("WriteResults: %v, %v", files, err)
	}
	rs, err := coco.ReadResults(files[1])
	if err != nil {
		t.Fatal(err)
	}
	if len(rs) != 2 || rs[1].ImageID != 20 || rs[1].CategoryID != 7 || rs[1].Segmentation == nil || rs[1].Segmentation.Area() != 100 {
		t.Errorf("the segm results read back as %+v", rs)
	}
}

func TestCocoMetricRefusesBadSettings(t *testing.T) {
	for _, c := range []CocoMetricConfig{
		{Metric: registry.StringList{"proposal"}, ProposalNums: []int{100}},
		{Metric: registry.StringList{"bbox"}},
		{Metric: registry.StringList{"bbox"}, ProposalNums: []int{100}, AnnFile: "x.json"},
		{Metric: registry.StringList{"bbox"}, ProposalNums: []int{100}, IoUThrs: FloatList{1.5}},
	} {
		if err := c.Validate(); err == nil {
			t.Errorf("%+v was accepted", c)
		}
	}
}

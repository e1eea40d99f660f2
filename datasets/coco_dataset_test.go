package datasets

import (
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/goselfsup/goselfsup/internal/cocofixture"
	"github.com/goselfsup/goselfsup/internal/pyref"
	"github.com/goselfsup/goselfsup/internal/shareddata"
	"github.com/goselfsup/goselfsup/registry"
)

// cocoFixture is a COCO annotation file on synthetic images, with every case of mmdet 2.x's
// CocoDataset. The categories are listed out of id order: sorted, person (1) is label 0, car
// (3) label 1, dog (18) label 2.
//
//	image 1 a.jpg 64x48:
//	  ann 10 dog    polygon rectangle, box [10 5 20 30]         -> gt [10 5 30 35]
//	  ann 11 person crowd, uncompressed RLE                      -> ignored [0 0 8 8]
//	  ann 12 person box [60 40 10 10] past the image (overlaps)  -> gt [60 40 70 50], not clipped
//	         uncompressed RLE of x 60..63, y 40..47: counts, column-major, 60 columns of 48
//	         zeros and 40 more (2920), then 8 ones and 40 zeros three times, then 8 ones
//	  ann 13 person box [64 0 10 10]: no overlap (inter_w 0)     -> skipped, warning
//	  ann 14 person area 0                                       -> skipped, warning
//	  ann 15 person w 0.5                                        -> skipped, warning
//	  ann 16 car    polygon                                      -> gt [40 10 50 20]
//	  ann 17 dog    one polygon of 2 points                      -> skipped, warning
//	  ann 18 dog    a 2-point polygon and a square               -> gt [0 0 10 10], polygon dropped, warning
//	  ann 19 dog    RLE of 10x10                                 -> skipped, warning
//	  ann 20 cat 999 (no such category)                          -> skipped, warning
//	  ann 21 image 77 (no such image)                            -> skipped, warning
//	  ann 22 person compressed RLE of x 0..1, y 0..2: counts [0 3 45 3 3021] -> gt [0 0 2 3]
//	         "03]10Pm2" (maskApi's rleToString: LEB128-like, 5 bits a char + 48, counts
//	         after the third as differences with the one two before)
//	image 2 b.jpg 40x40: a person crowd only: stays (mmdet counts it), no gt box
//	image 3 c.jpg 50x50: no annotation: filtered out (filter_empty_gt)
//	image 4 d.jpg 20x60: a dog, but 20 pixels wide: filtered out (min_size 32)
//	image 5 e.jpg 50x40: a car only: filtered out when classes are person and dog
func cocoFixture(t *testing.T) (root string, file map[string]any) {
	t.Helper()
	root = t.TempDir()
	for _, im := range []struct {
		name string
		w, h int
	}{{"a.jpg", 64, 48}, {"b.jpg", 40, 40}, {"c.jpg", 50, 50}, {"d.jpg", 20, 60}, {"e.jpg", 50, 40}} {
		writeJPEG(t, filepath.Join(root, "val2017", im.name), im.w, im.h)
	}
	img := func(id int, name string, w, h int) map[string]any {
		return map[string]any{"id": id, "file_name": name, "width": w, "height": h}
	}
	ann := func(id, image, cat int, box []float64, area float64, crowd int, seg any) map[string]any {
		return map[string]any{"id": id, "image_id": image, "category_id": cat, "bbox": box, "area": area, "iscrowd": crowd, "segmentation": seg}
	}
	rect := func(x1, y1, x2, y2 float64) [][]float64 { return [][]float64{{x1, y1, x2, y1, x2, y2, x1, y2}} }
	file = map[string]any{
		"images": []any{img(1, "a.jpg", 64, 48), img(2, "b.jpg", 40, 40), img(3, "c.jpg", 50, 50), img(4, "d.jpg", 20, 60), img(5, "e.jpg", 50, 40)},
		"categories": []any{map[string]any{"id": 18, "name": "dog", "supercategory": "animal"}, map[string]any{"id": 1, "name": "person", "supercategory": "person"},
			map[string]any{"id": 3, "name": "car", "supercategory": "vehicle"}},
		"annotations": []any{
			ann(10, 1, 18, []float64{10, 5, 20, 30}, 600, 0, rect(10, 5, 30, 35)),
			ann(11, 1, 1, []float64{0, 0, 8, 8}, 64, 1, map[string]any{"size": []int{48, 64}, "counts": []int{0, 8, 40, 8, 40, 8, 40, 8, 40, 8, 40, 8, 40, 8, 40, 8, 2728}}),
			ann(12, 1, 1, []float64{60, 40, 10, 10}, 32, 0, map[string]any{"size": []int{48, 64}, "counts": []int{2920, 8, 40, 8, 40, 8, 40, 8}}),
			ann(13, 1, 1, []float64{64, 0, 10, 10}, 100, 0, rect(64, 0, 74, 10)),
			ann(14, 1, 1, []float64{5, 5, 10, 10}, 0, 0, rect(5, 5, 15, 15)),
			ann(15, 1, 1, []float64{5, 5, 0.5, 10}, 5, 0, rect(5, 5, 5.5, 15)),
			ann(16, 1, 3, []float64{40, 10, 10, 10}, 100, 0, rect(40, 10, 50, 20)),
			ann(17, 1, 18, []float64{1, 1, 5, 5}, 25, 0, [][]float64{{1, 1, 6, 6}}),
			ann(18, 1, 18, []float64{0, 0, 10, 10}, 100, 0, [][]float64{{1, 1, 6, 6}, {0, 0, 10, 0, 10, 10, 0, 10}}),
			ann(19, 1, 18, []float64{0, 0, 5, 5}, 25, 0, map[string]any{"size": []int{10, 10}, "counts": []int{0, 100}}),
			ann(20, 1, 999, []float64{0, 0, 5, 5}, 25, 0, rect(0, 0, 5, 5)),
			ann(21, 77, 1, []float64{0, 0, 5, 5}, 25, 0, rect(0, 0, 5, 5)),
			ann(22, 1, 1, []float64{0, 0, 2, 3}, 6, 0, map[string]any{"size": []int{48, 64}, "counts": "03]10Pm2"}),
			ann(30, 2, 1, []float64{0, 0, 40, 40}, 1600, 1, map[string]any{"size": []int{40, 40}, "counts": []int{0, 1600}}),
			ann(40, 4, 18, []float64{0, 0, 10, 10}, 100, 0, rect(0, 0, 10, 10)),
			ann(50, 5, 3, []float64{0, 0, 10, 10}, 100, 0, rect(0, 0, 10, 10)),
		},
	}
	writeCOCO(t, filepath.Join(root, "annotations", "val.json"), file)
	return root, file
}

func writeCOCO(t *testing.T, path string, file map[string]any) {
	t.Helper()
	data, err := json.Marshal(file)
	if err != nil {
		t.Fatal(err)
	}
	write(t, path, string(data))
}

func cocoSpec(root string, extra ...any) map[string]any {
	m := map[string]any{"data_root": root, "ann_file": "annotations/val.json", "img_prefix": "val2017/",
		"pipeline": []any{map[string]any{"type": "LoadImageFromFile"}, map[string]any{"type": "LoadAnnotations", "with_bbox": true, "with_mask": true}}}
	for i := 0; i < len(extra); i += 2 {
		m[extra[i].(string)] = extra[i+1]
	}
	return m
}

func cocoOf(t *testing.T, ds *Dataset) COCOSource {
	t.Helper()
	src, ok := AsCOCOSource(ds.Source)
	if !ok {
		t.Fatal("CocoDataset's source is not a COCOSource")
	}
	if _, ok := AsDetSource(ds.Source); !ok {
		t.Fatal("CocoDataset's source is not a DetSource")
	}
	return src
}

func TestCocoDatasetParsesMMDet2Annotations(t *testing.T) {
	root, _ := cocoFixture(t)
	src := cocoOf(t, buildDataset(t, "CocoDataset", cocoSpec(root)))
	if got := src.Classes(); !reflect.DeepEqual(got, []string{"person", "car", "dog"}) {
		t.Errorf("classes %v, want person car dog (by category id)", got)
	}
	if got := src.CatIDs(); !reflect.DeepEqual(got, []int64{1, 3, 18}) {
		t.Errorf("cat ids %v", got)
	}
	// Training: c (empty) and d (20 wide) are filtered out; b (a crowd only) stays.
	var ids []int64
	for i := range src.Len() {
		ids = append(ids, src.ImageID(i))
	}
	if !reflect.DeepEqual(ids, []int64{1, 2, 5}) {
		t.Fatalf("image ids %v, want [1 2 5]", ids)
	}
	a, err := src.DetAnnotation(0)
	if err != nil {
		t.Fatal(err)
	}
	want := &DetAnnotation{
		Boxes:         [][4]float32{{10, 5, 30, 35}, {60, 40, 70, 50}, {40, 10, 50, 20}, {0, 0, 10, 10}, {0, 0, 2, 3}},
		Labels:        []int32{2, 0, 1, 2, 0},
		IgnoredBoxes:  [][4]float32{{0, 0, 8, 8}},
		IgnoredLabels: []int32{0},
	}
	if !reflect.DeepEqual(a.Boxes, want.Boxes) || !reflect.DeepEqual(a.Labels, want.Labels) ||
		!reflect.DeepEqual(a.IgnoredBoxes, want.IgnoredBoxes) || !reflect.DeepEqual(a.IgnoredLabels, want.IgnoredLabels) {
		t.Errorf("image 1: %+v, want %+v", a, want)
	}
	if b, _ := src.DetAnnotation(1); len(b.Boxes) != 0 || !reflect.DeepEqual(b.IgnoredBoxes, [][4]float32{{0, 0, 40, 40}}) {
		t.Errorf("image 2: %+v", b)
	}
	if w, h, _ := src.ImageSize(0); w != 64 || h != 48 {
		t.Errorf("image 1's size %dx%d", w, h)
	}
	warnings := src.Warnings()
	if len(warnings) != 8 {
		t.Errorf("%d warnings, want 8: %q", len(warnings), warnings)
	}
	for _, id := range []string{"annotation 13:", "annotation 14:", "annotation 15:", "annotation 17:", "annotation 18:", "annotation 19:", "annotation 20:", "annotation 21:"} {
		if !slicesContain(warnings, id, "val.json") {
			t.Errorf("no warning naming val.json and %s in %q", id, warnings)
		}
	}
	if len(src.COCO().Annotations) != 16 {
		t.Errorf("COCO() has %d annotations, want all 16", len(src.COCO().Annotations))
	}

	// The masks, decoded when the sample loads, in the order of the boxes.
	ds := buildDataset(t, "CocoDataset", cocoSpec(root))
	s, err := ds.Get(0, rand.New(rand.NewPCG(1, 2)))
	if err != nil {
		t.Fatal(err)
	}
	m := s.GTMasks
	if m == nil || m.N != 5 || m.Width != 64 || m.Height != 48 {
		t.Fatalf("masks %+v", m)
	}
	for j, box := range want.Boxes {
		// Each mask lies in its box (polygons: pycocotools' rasterisation covers the pixels
		// whose centres are inside, give or take the boundary), and is not empty.
		n := 0
		for y := range 48 {
			for x := range 64 {
				if m.At(j)[y*64+x] == 0 {
					continue
				}
				n++
				if float32(x) < box[0]-1 || float32(x) > box[2] || float32(y) < box[1]-1 || float32(y) > box[3] {
					t.Errorf("mask %d has (%d, %d), outside its box %v", j, x, y, box)
				}
			}
		}
		if n == 0 {
			t.Errorf("mask %d is empty", j)
		}
	}
	// The RLE masks, exactly: x 60..63, y 40..47 and x 0..1, y 0..2.
	for j, r := range [][4]int{1: {60, 40, 64, 48}, 4: {0, 0, 2, 3}} {
		if r == [4]int{} {
			continue
		}
		for y := range 48 {
			for x := range 64 {
				in := x >= r[0] && x < r[2] && y >= r[1] && y < r[3]
				if (m.At(j)[y*64+x] == 1) != in {
					t.Fatalf("RLE mask %d at (%d, %d) is %d", j, x, y, m.At(j)[y*64+x])
				}
			}
		}
	}
	// Image 2: no boxes, no masks, but masks of its size.
	s, err = ds.Get(1, rand.New(rand.NewPCG(1, 2)))
	if err != nil || s.GTMasks == nil || s.GTMasks.N != 0 || s.GTMasks.Width != 40 {
		t.Errorf("image 2's masks: %+v, %v", s.GTMasks, err)
	}
}

func slicesContain(list []string, subs ...string) bool {
	for _, s := range list {
		ok := true
		for _, sub := range subs {
			ok = ok && strings.Contains(s, sub)
		}
		if ok {
			return true
		}
	}
	return false
}

func TestCocoDatasetClassesAndFilters(t *testing.T) {
	root, _ := cocoFixture(t)
	// A subset: labels by category id (person 1 -> 0, dog 18 -> 1), whatever the order of
	// classes; e (car only) is now filtered out, and image 1's car box is left out.
	src := cocoOf(t, buildDataset(t, "CocoDataset", cocoSpec(root, "classes", []string{"dog", "person"})))
	if !reflect.DeepEqual(src.Classes(), []string{"person", "dog"}) || !reflect.DeepEqual(src.CatIDs(), []int64{1, 18}) {
		t.Errorf("classes %v, cat ids %v", src.Classes(), src.CatIDs())
	}
	if src.Len() != 2 || src.ImageID(0) != 1 || src.ImageID(1) != 2 {
		t.Errorf("%d images, first ids %d", src.Len(), src.ImageID(0))
	}
	a, _ := src.DetAnnotation(0)
	if !reflect.DeepEqual(a.Labels, []int32{1, 0, 1, 0}) || a.Boxes[2] != [4]float32{0, 0, 10, 10} {
		t.Errorf("subset labels %v, boxes %v", a.Labels, a.Boxes)
	}
	// filter_empty_gt = false keeps c (no annotation), not d (min_size 32).
	src = cocoOf(t, buildDataset(t, "CocoDataset", cocoSpec(root, "filter_empty_gt", false)))
	if src.Len() != 4 || src.ImageID(2) != 3 {
		t.Errorf("filter_empty_gt false: %d images", src.Len())
	}
	// test_mode keeps every image, in the file's order.
	src = cocoOf(t, buildDataset(t, "CocoDataset", cocoSpec(root, "test_mode", true)))
	if src.Len() != 5 || src.ImageID(3) != 4 {
		t.Errorf("test_mode: %d images", src.Len())
	}
	if d, _ := src.DetAnnotation(3); !reflect.DeepEqual(d.Boxes, [][4]float32{{0, 0, 10, 10}}) {
		t.Errorf("d in test_mode: %+v", d)
	}
}

func TestCocoDatasetErrors(t *testing.T) {
	root, file := cocoFixture(t)
	build := func(spec map[string]any) error {
		_, err := buildDatasetErr("CocoDataset", spec)
		return err
	}
	// Malformed JSON names the file.
	write(t, filepath.Join(root, "annotations", "bad.json"), `{"images": [`)
	if err := build(cocoSpec(root, "ann_file", "annotations/bad.json")); err == nil || !strings.Contains(err.Error(), "bad.json") {
		t.Errorf("bad JSON: %v", err)
	}
	if err := build(cocoSpec(root, "ann_file", "annotations/none.json")); err == nil || !strings.Contains(err.Error(), "none.json") {
		t.Errorf("no file: %v", err)
	}
	if err := build(cocoSpec(root, "classes", []string{"person", "unicorn"})); err == nil || !strings.Contains(err.Error(), "unicorn") {
		t.Errorf("an unknown class: %v", err)
	}
	if err := build(cocoSpec(root, "img_prefix", "", "data_prefix", "train2017/")); err == nil || !strings.Contains(err.Error(), "train2017") {
		t.Errorf("a missing image folder: %v", err)
	}
	if err := build(cocoSpec(root, "img_prefix", "")); err == nil || !strings.Contains(err.Error(), "img_prefix") {
		t.Errorf("no image folder: %v", err)
	}
	// Repeated annotation ids (mmdet asserts they are unique).
	anns := file["annotations"].([]any)
	dup := map[string]any{"images": file["images"], "categories": file["categories"], "annotations": append([]any{anns[0]}, anns...)}
	writeCOCO(t, filepath.Join(root, "annotations", "dup.json"), dup)
	if err := build(cocoSpec(root, "ann_file", "annotations/dup.json")); err == nil || !strings.Contains(err.Error(), "dup.json") || !strings.Contains(err.Error(), "10") {
		t.Errorf("repeated annotation ids: %v", err)
	}
	// A missing image file.
	os.Remove(filepath.Join(root, "val2017", "e.jpg"))
	if err := build(cocoSpec(root)); err == nil || !strings.Contains(err.Error(), "e.jpg") {
		t.Errorf("a missing image: %v", err)
	}
	// data_prefix names the folder as img_prefix does.
	writeJPEG(t, filepath.Join(root, "val2017", "e.jpg"), 50, 40)
	if err := build(cocoSpec(root, "img_prefix", "", "data_prefix", map[string]any{"img_path": "val2017"})); err != nil {
		t.Errorf("data_prefix: %v", err)
	}
}

// buildDatasetErr builds a dataset and returns the error.
func buildDatasetErr(typ string, table map[string]any) (*Dataset, error) {
	clean := map[string]any{}
	for k, v := range table {
		if v != "" {
			clean[k] = v
		}
	}
	return registry.Build[*Dataset](&registry.Env{}, registry.NewSpec(registry.Datasets, typ, clean))
}

// Warnings are bounded: the first MaxWarnings, then the number of the others.
func TestCocoDatasetBoundsWarnings(t *testing.T) {
	root, file := cocoFixture(t)
	anns := file["annotations"].([]any)
	for i := range 30 {
		anns = append(anns, map[string]any{"id": 1000 + i, "image_id": 1, "category_id": 555, "bbox": []float64{0, 0, 5, 5}, "area": 25, "iscrowd": 0, "segmentation": [][]float64{}})
	}
	file["annotations"] = anns
	writeCOCO(t, filepath.Join(root, "annotations", "val.json"), file)
	w := cocoOf(t, buildDataset(t, "CocoDataset", cocoSpec(root))).Warnings()
	if len(w) != MaxWarnings+1 || !strings.Contains(w[MaxWarnings], "18 more") || !strings.Contains(w[0], "annotation 20:") {
		t.Errorf("%d warnings: first %q, last %q", len(w), w[0], w[len(w)-1])
	}
}

// The masks of real COCO128 images through mmdet 2.x's training pipeline (Resize keep_ratio,
// RandomFlip, Pad /32, Collect), against NumPy: the RLEs decoded by NumPy (runs of 0 and 1
// in column-major order), resized with OpenCV's INTER_NEAREST rule (source index
// min(floor(x * (1 / (new / old))), old - 1), cv::resize's resizeNN), flipped with np.flip
// and padded with zeros to the batch's canvas.
func TestCocoMasksThroughMMDet2PipelineMatchNumPy(t *testing.T) {
	dir, err := shareddata.Dir("coco128-lightly")
	if errors.Is(err, shareddata.ErrAbsent) {
		t.Skip(err)
	}
	if err != nil {
		t.Fatal(err)
	}
	python, err := pyref.Python("numpy")
	if err != nil {
		t.Skip(err)
	}
	// Two val2017 images; on each, three RLE masks: rectangles and a disc, encoded here by
	// hand (column-major runs).
	type img struct {
		id   int
		name string
		w, h int
	}
	imgs := []img{{139, "000000000139.jpg", 640, 426}, {724, "000000000724.jpg", 375, 500}}
	var annotations, images []any
	masks := map[int][][]uint8{}
	id := 1
	for _, im := range imgs {
		images = append(images, map[string]any{"id": im.id, "file_name": im.name, "width": im.w, "height": im.h})
		shapes := []func(x, y int) bool{
			func(x, y int) bool { return x >= 17 && x < 213 && y >= 31 && y < 140 },
			func(x, y int) bool { dx, dy := x-im.w/2, y-im.h/2; return dx*dx+dy*dy < 70*70 },
			func(x, y int) bool { return x >= im.w-9 && y >= im.h-50 },
		}
		for _, in := range shapes {
			m := make([]uint8, im.w*im.h)
			x0, y0, x1, y1 := im.w, im.h, 0, 0
			for y := range im.h {
				for x := range im.w {
					if in(x, y) {
						m[y*im.w+x] = 1
						x0, y0, x1, y1 = min(x0, x), min(y0, y), max(x1, x+1), max(y1, y+1)
					}
				}
			}
			masks[im.id] = append(masks[im.id], m)
			annotations = append(annotations, map[string]any{"id": id, "image_id": im.id, "category_id": 1 + id%2, "iscrowd": 0, "area": 1,
				"bbox": []int{x0, y0, x1 - x0, y1 - y0}, "segmentation": map[string]any{"size": []int{im.h, im.w}, "counts": runs(m, im.w, im.h)}})
			id++
		}
	}
	root := t.TempDir()
	writeCOCO(t, filepath.Join(root, "instances.json"), map[string]any{"images": images, "annotations": annotations,
		"categories": []any{map[string]any{"id": 1, "name": "person"}, map[string]any{"id": 2, "name": "bicycle"}}})
	pipeline := []any{
		map[string]any{"type": "LoadImageFromFile"},
		map[string]any{"type": "LoadAnnotations", "with_bbox": true, "with_mask": true},
		map[string]any{"type": "Resize", "img_scale": []int{400, 240}, "keep_ratio": true},
		map[string]any{"type": "RandomFlip", "flip_ratio": 1.0},
		map[string]any{"type": "Pad", "size_divisor": 32},
		map[string]any{"type": "DefaultFormatBundle"},
		map[string]any{"type": "Collect", "keys": []string{"img", "gt_bboxes", "gt_labels", "gt_masks"}, "max_gt": 4},
	}
	ds := buildDataset(t, "CocoDataset", map[string]any{"ann_file": filepath.Join(root, "instances.json"),
		"img_prefix": filepath.Join(dir, "images", "val2017"), "pipeline": pipeline})
	b := oneEpoch(t, ds, 2)[0]
	d := b.Det
	if d.MaxGT != 4 || len(d.Masks) != 2*4*b.Height*b.Width || d.Counts[0] != 3 || d.Counts[1] != 3 {
		t.Fatalf("batch %dx%d, max_gt %d, %d mask bytes, counts %v", b.Width, b.Height, d.MaxGT, len(d.Masks), d.Counts)
	}
	// The reference, from the RLEs of the file and the image sizes the pipeline reports
	// (mmcv's rescale_size is checked by the Resize tests).
	type refIn struct {
		Counts [][]int `json:"counts"`
		W      int     `json:"w"`
		H      int     `json:"h"`
		NewW   int     `json:"new_w"`
		NewH   int     `json:"new_h"`
	}
	var in struct {
		Images  []refIn `json:"images"`
		CanvasW int     `json:"canvas_w"`
		CanvasH int     `json:"canvas_h"`
		MaxGT   int     `json:"max_gt"`
	}
	in.CanvasW, in.CanvasH, in.MaxGT = b.Width, b.Height, d.MaxGT
	for i := range 2 {
		im := imgs[0]
		if b.Indices[i] == 1 {
			im = imgs[1]
		}
		r := refIn{W: im.w, H: im.h, NewW: int(b.ImgShapes[2*i+1]), NewH: int(b.ImgShapes[2*i])}
		for _, m := range masks[im.id] {
			r.Counts = append(r.Counts, runs(m, im.w, im.h))
		}
		in.Images = append(in.Images, r)
	}
	want := runNumPy(t, python, maskReference, in)
	if len(want) != len(d.Masks) {
		t.Fatalf("reference of %d bytes, batch %d", len(want), len(d.Masks))
	}
	diff := 0
	for i := range want {
		if want[i] != d.Masks[i] {
			diff++
		}
	}
	if diff != 0 {
		t.Errorf("%d of %d mask bytes differ from NumPy's", diff, len(want))
	}
}

// runs are the column-major run lengths of a w x h bitmap, starting with zeros (COCO's
// uncompressed RLE).
func runs(m []uint8, w, h int) []int {
	var out []int
	prev, n := uint8(0), 0
	for x := range w {
		for y := range h {
			if v := m[y*w+x]; v != prev {
				out, prev, n = append(out, n), v, 0
			}
			n++
		}
	}
	return append(out, n)
}

const maskReference = `
import json, sys
import numpy as np
p = json.load(sys.stdin)
out = np.zeros((len(p["images"]), p["max_gt"], p["canvas_h"], p["canvas_w"]), np.uint8)
for i, im in enumerate(p["images"]):
    w, h, nw, nh = im["w"], im["h"], im["new_w"], im["new_h"]
    xs = np.minimum(np.floor(np.arange(nw) * (1.0 / (nw / w))).astype(int), w - 1)
    ys = np.minimum(np.floor(np.arange(nh) * (1.0 / (nh / h))).astype(int), h - 1)
    for j, counts in enumerate(im["counts"]):
        vals = np.repeat(np.arange(len(counts)) % 2, counts).astype(np.uint8)
        m = vals.reshape(w, h).T
        m = m[ys][:, xs]
        m = np.flip(m, axis=1)
        out[i, j, :nh, :nw] = m
json.dump(out.ravel().tolist(), sys.stdout)
`

// runNumPy runs a Python reference on the JSON of in and returns its JSON list of bytes.
func runNumPy(t *testing.T, python, script string, in any) []uint8 {
	t.Helper()
	data, err := json.Marshal(in)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(python, "-c", script)
	cmd.Stdin = strings.NewReader(string(data))
	out, err := cmd.Output()
	if err != nil {
		t.Fatal(fmt.Errorf("the NumPy reference: %w", err))
	}
	var got []uint8
	var ints []int
	if err := json.Unmarshal(out, &ints); err != nil {
		t.Fatal(err)
	}
	for _, v := range ints {
		got = append(got, uint8(v))
	}
	return got
}

// COCO128's val2017 as COCO instances (internal/cocofixture: one annotation a "thing"
// segment of its panoptic PNGs, the mask a compressed RLE, the box its extent and the area
// its pixel count): every image keeps its non-crowd annotations as boxes, and each decoded
// mask has the annotation's area and fills its box's extent.
func TestCocoDatasetOnCOCO128(t *testing.T) {
	dir, err := shareddata.Dir("coco128-lightly")
	if errors.Is(err, shareddata.ErrAbsent) {
		t.Skip(err)
	}
	if err != nil {
		t.Fatal(err)
	}
	d, err := cocofixture.FromCOCO128(dir, "val2017")
	if err != nil {
		t.Fatal(err)
	}
	ann := filepath.Join(t.TempDir(), "instances_val2017.json")
	if err := d.Write(ann); err != nil {
		t.Fatal(err)
	}
	ds := buildDataset(t, "CocoDataset", map[string]any{"ann_file": ann, "img_prefix": filepath.Join(dir, "images", "val2017"),
		"pipeline": []any{map[string]any{"type": "LoadImageFromFile"}, map[string]any{"type": "LoadAnnotations", "with_bbox": true, "with_mask": true}}})
	src := cocoOf(t, ds)
	if len(src.Classes()) != 80 || src.CatIDs()[79] != 90 || src.Classes()[0] != "person" {
		t.Errorf("%d classes, last id %d", len(src.Classes()), src.CatIDs()[len(src.CatIDs())-1])
	}
	if w := src.Warnings(); len(w) != 0 {
		t.Errorf("warnings on COCO128: %q", w)
	}
	byID := map[int64][]int{}
	for k, a := range d.Annotations {
		byID[a.ImageID] = append(byID[a.ImageID], k)
	}
	for i := range min(src.Len(), 12) {
		s, err := ds.Get(i, rand.New(rand.NewPCG(1, uint64(i))))
		if err != nil {
			t.Fatal(err)
		}
		var kept []int // the image's non-crowd annotations, in the file's order
		for _, k := range byID[src.ImageID(i)] {
			if d.Annotations[k].IsCrowd == 0 {
				kept = append(kept, k)
			}
		}
		if len(s.GT.Boxes) != len(kept) || s.GTMasks.N != len(kept) {
			t.Fatalf("image %d: %d boxes, %d masks, want %d", src.ImageID(i), len(s.GT.Boxes), s.GTMasks.N, len(kept))
		}
		for j, k := range kept {
			a, m := d.Annotations[k], s.GTMasks.At(j)
			n, x0, y0, x1, y1 := 0, s.GTMasks.Width, s.GTMasks.Height, 0, 0
			for p, v := range m {
				if v != 0 {
					x, y := p%s.GTMasks.Width, p/s.GTMasks.Width
					n, x0, y0, x1, y1 = n+1, min(x0, x), min(y0, y), max(x1, x+1), max(y1, y+1)
				}
			}
			b := s.GT.Boxes[j]
			if float64(n) != a.Area || [4]float32{float32(x0), float32(y0), float32(x1), float32(y1)} != b {
				t.Errorf("image %d annotation %d: mask of %d pixels in [%d %d %d %d], annotation area %v box %v", src.ImageID(i), a.ID, n, x0, y0, x1, y1, a.Area, b)
			}
		}
	}
}

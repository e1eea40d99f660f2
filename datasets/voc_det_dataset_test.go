package datasets

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/goselfsup/goselfsup/internal/shareddata"
	"github.com/goselfsup/goselfsup/internal/vocfixture"
	"github.com/goselfsup/goselfsup/registry"
)

// detFixture lays out VOCdevkit/VOC2007 and VOC2012 for detection:
//
//	VOC2007 a (64x48): dog [11 21 40 45], a difficult person [1 1 20 30]
//	VOC2007 b (50x40): only a difficult car
//	VOC2007 c (40x40): no object
//	VOC2007 d (20x60): a cat, but narrower than 32 pixels
//	VOC2007 e (64x48): hand-written XML without <size> and <difficult>, float coordinates
//	VOC2012 f (48x64): horse [1 1 48 64]
func detFixture(t *testing.T) string {
	t.Helper()
	root := filepath.Join(t.TempDir(), "VOCdevkit")
	ann := func(year, id string, w, h int, objs ...vocfixture.Object) {
		t.Helper()
		writeJPEG(t, filepath.Join(root, year, "JPEGImages", id+".jpg"), w, h)
		os.MkdirAll(filepath.Join(root, year, "Annotations"), 0o755)
		if err := vocfixture.WriteXML(filepath.Join(root, year, "Annotations", id+".xml"), vocfixture.Annotation{Filename: id + ".jpg", Width: w, Height: h, Objects: objs}); err != nil {
			t.Fatal(err)
		}
	}
	ann("VOC2007", "a", 64, 48, vocfixture.Object{Name: "dog", XMin: 11, YMin: 21, XMax: 40, YMax: 45},
		vocfixture.Object{Name: "person", Difficult: true, XMin: 1, YMin: 1, XMax: 20, YMax: 30})
	ann("VOC2007", "b", 50, 40, vocfixture.Object{Name: "car", Difficult: true, XMin: 5, YMin: 5, XMax: 30, YMax: 30})
	ann("VOC2007", "c", 40, 40)
	ann("VOC2007", "d", 20, 60, vocfixture.Object{Name: "cat", XMin: 2, YMin: 2, XMax: 18, YMax: 50})
	writeJPEG(t, filepath.Join(root, "VOC2007", "JPEGImages", "e.jpg"), 64, 48)
	write(t, filepath.Join(root, "VOC2007", "Annotations", "e.xml"), `<annotation><filename>e.jpg</filename>
	<object><name> bird </name><bndbox><xmin>10.6</xmin><ymin>3.2</ymin><xmax>50.9</xmax><ymax>40</ymax></bndbox></object>
</annotation>`)
	write(t, filepath.Join(root, "VOC2007", "ImageSets", "Main", "trainval.txt"), "a\nb\nc\n\nd\ne\n")
	ann("VOC2012", "f", 48, 64, vocfixture.Object{Name: "horse", XMin: 1, YMin: 1, XMax: 48, YMax: 64})
	write(t, filepath.Join(root, "VOC2012", "ImageSets", "Main", "trainval.txt"), "f\n")
	return root
}

func vocDetSpec(root string, extra ...any) map[string]any {
	m := map[string]any{"data_root": root, "ann_file": "VOC2007/ImageSets/Main/trainval.txt", "img_prefix": "VOC2007/",
		"pipeline": []any{map[string]any{"type": "LoadImageFromFile"}, map[string]any{"type": "LoadAnnotations", "with_bbox": true}}}
	for i := 0; i < len(extra); i += 2 {
		m[extra[i].(string)] = extra[i+1]
	}
	return m
}

func detIDs(t *testing.T, ds *Dataset) []string {
	t.Helper()
	var ids []string
	for i := range ds.Len() {
		s, err := ds.Source.Sample(i)
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, strings.TrimSuffix(filepath.Base(s.Path), ".jpg"))
	}
	return ids
}

func label(name string) int32 {
	for i, c := range VOCClasses {
		if c == name {
			return int32(i)
		}
	}
	panic(name)
}

func TestVOCDatasetReadsMMDet2Boxes(t *testing.T) {
	root := detFixture(t)
	ds := buildDataset(t, "VOCDataset", vocDetSpec(root))
	// Training: c (no object) and d (20 pixels wide) are filtered out; b, whose objects are
	// all difficult, stays, as in mmdet 2.x.
	if ids := detIDs(t, ds); !reflect.DeepEqual(ids, []string{"a", "b", "e"}) {
		t.Fatalf("training images %v, want [a b e]", ids)
	}
	src, ok := AsDetSource(ds.Source)
	if !ok {
		t.Fatal("VOCDataset is not a DetSource")
	}
	want := []*DetAnnotation{
		{Boxes: [][4]float32{{10, 20, 39, 44}}, Labels: []int32{label("dog")},
			IgnoredBoxes: [][4]float32{{0, 0, 19, 29}}, IgnoredLabels: []int32{label("person")}},
		{IgnoredBoxes: [][4]float32{{4, 4, 29, 29}}, IgnoredLabels: []int32{label("car")}},
		{Boxes: [][4]float32{{9, 2, 49, 39}}, Labels: []int32{label("bird")}}, // int(float(text)) - 1
	}
	for i, w := range want {
		got, err := src.DetAnnotation(i)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(got, w) {
			t.Errorf("image %d: %+v, want %+v", i, got, w)
		}
	}
	if w, h, _ := src.ImageSize(2); w != 64 || h != 48 {
		t.Errorf("e's size from its image: %dx%d, want 64x48", w, h)
	}
	// The pipeline's LoadAnnotations copies the annotation into the sample's GT.
	s, err := ds.Get(0, rand.New(rand.NewPCG(1, 2)))
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(s.GT, want[0]) || s.GT == s.Det || s.OriWidth != 64 {
		t.Errorf("sample 0: GT %+v (Det %p, GT %p), ori width %d", s.GT, s.Det, s.GT, s.OriWidth)
	}

	if ids := detIDs(t, buildDataset(t, "VOCDataset", vocDetSpec(root, "test_mode", true))); len(ids) != 5 {
		t.Errorf("test_mode keeps %v, want all five", ids)
	}
	if ids := detIDs(t, buildDataset(t, "VOCDataset", vocDetSpec(root, "filter_empty_gt", false))); !reflect.DeepEqual(ids, []string{"a", "b", "c", "e"}) {
		t.Errorf("filter_empty_gt = false keeps %v, want [a b c e] (d is below 32 pixels)", ids)
	}
	// min_size 25: the dog box is 29 x 24 (in the XML's pixels), so it becomes ignored.
	small, _ := AsDetSource(buildDataset(t, "VOCDataset", vocDetSpec(root, "min_size", 25.0)).Source)
	if a, _ := small.DetAnnotation(0); len(a.Boxes) != 0 || len(a.IgnoredBoxes) != 2 || a.IgnoredBoxes[0] != [4]float32{10, 20, 39, 44} {
		t.Errorf("min_size 25: %+v", a)
	}
	// A class subset: other names are left out; labels follow the subset.
	sub, _ := AsDetSource(buildDataset(t, "VOCDataset", vocDetSpec(root, "classes", []string{"bird", "dog"})).Source)
	if a, _ := sub.DetAnnotation(0); !reflect.DeepEqual(a, &DetAnnotation{Boxes: [][4]float32{{10, 20, 39, 44}}, Labels: []int32{1}}) {
		t.Errorf("classes [bird dog]: a is %+v", a)
	}
	if sub.Len() != 2 || !reflect.DeepEqual(sub.Classes(), []string{"bird", "dog"}) {
		t.Errorf("classes [bird dog]: %d images of %v, want a and e", sub.Len(), sub.Classes())
	}
}

// VOC07+12 as mmdet 2.x writes it (lists of ann_file and img_prefix) and as a ConcatDataset.
func TestVOC0712Concatenates(t *testing.T) {
	root := detFixture(t)
	lists := buildDataset(t, "VOCDataset", vocDetSpec(root, "ann_file", []string{"VOC2007/ImageSets/Main/trainval.txt", "VOC2012/ImageSets/Main/trainval.txt"},
		"img_prefix", []string{"VOC2007/", "VOC2012/"}))
	concat := buildDataset(t, "ConcatDataset", map[string]any{"datasets": []any{
		merge(vocDetSpec(root), "type", "VOCDataset"),
		merge(vocDetSpec(root, "ann_file", filepath.Join(root, "VOC2012/ImageSets/Main/trainval.txt"), "img_prefix", "VOC2012"), "type", "VOCDataset"),
	}})
	for name, ds := range map[string]*Dataset{"lists": lists, "ConcatDataset": concat} {
		if ids := detIDs(t, ds); !reflect.DeepEqual(ids, []string{"a", "b", "e", "f"}) {
			t.Errorf("%s: %v", name, ids)
		}
		src, ok := AsDetSource(ds.Source)
		if !ok {
			t.Fatalf("%s is not a DetSource", name)
		}
		if a, err := src.DetAnnotation(3); err != nil || !reflect.DeepEqual(a.Boxes, [][4]float32{{0, 0, 47, 63}}) {
			t.Errorf("%s: f's annotation %+v, %v", name, a, err)
		}
		s, err := ds.Get(3, rand.New(rand.NewPCG(1, 2)))
		if err != nil || s.GT == nil || s.GT.Labels[0] != label("horse") {
			t.Errorf("%s: sample 3 through its part's pipeline: %+v, %v", name, s.GT, err)
		}
	}
	if _, ok := AsDetSource(buildDataset(t, "ConcatDataset", map[string]any{"datasets": []any{
		merge(vocSpec(vocFixture(t), "train.txt", "SegmentationClass", segLoad()), "type", "PascalVOCDataset")}}).Source); ok {
		t.Error("a ConcatDataset of segmentation datasets is a DetSource")
	}
}

func merge(m map[string]any, kv ...any) map[string]any {
	out := map[string]any{}
	for k, v := range m {
		out[k] = v
	}
	for i := 0; i < len(kv); i += 2 {
		out[kv[i].(string)] = kv[i+1]
	}
	return out
}

func TestVOCDatasetErrors(t *testing.T) {
	root := detFixture(t)
	build := func(table map[string]any) error {
		_, err := registry.Build[*Dataset](&registry.Env{}, registry.NewSpec(registry.Datasets, "VOCDataset", table))
		return err
	}
	write(t, filepath.Join(root, "bad", "ImageSets", "Main", "x.txt"), "x\n")
	writeJPEG(t, filepath.Join(root, "bad", "JPEGImages", "x.jpg"), 40, 40)
	xml := filepath.Join(root, "bad", "Annotations", "x.xml")
	os.MkdirAll(filepath.Dir(xml), 0o755)
	for _, tc := range []struct {
		name  string
		table map[string]any
		xml   string
		want  []string
	}{
		{"no year folder", vocDetSpec(root, "img_prefix", "VOC2009"), "", []string{filepath.Join(root, "VOC2009"), DataLayoutHelp}},
		{"no list", vocDetSpec(root, "ann_file", "VOC2007/ImageSets/Main/test.txt"), "", []string{"test.txt", DataLayoutHelp}},
		{"no image", vocDetSpec(root, "ann_file", "bad/ImageSets/Main/x.txt"), "", []string{filepath.Join(root, "VOC2007", "JPEGImages", "x.jpg"), DataLayoutHelp}},
		{"no annotation", vocDetSpec(root, "ann_file", "bad/ImageSets/Main/x.txt", "img_prefix", "bad"), "", []string{xml, DataLayoutHelp}},
		{"malformed", vocDetSpec(root, "ann_file", "bad/ImageSets/Main/x.txt", "img_prefix", "bad"), "<annotation><object>", []string{xml, "malformed"}},
		{"unknown class", vocDetSpec(root, "ann_file", "bad/ImageSets/Main/x.txt", "img_prefix", "bad"),
			"<annotation><object><name>unicorn</name><bndbox><xmin>1</xmin><ymin>1</ymin><xmax>5</xmax><ymax>5</ymax></bndbox></object></annotation>", []string{xml, `"unicorn"`}},
		{"bad coordinate", vocDetSpec(root, "ann_file", "bad/ImageSets/Main/x.txt", "img_prefix", "bad"),
			"<annotation><object><name>dog</name><bndbox><xmin>one</xmin><ymin>1</ymin><xmax>5</xmax><ymax>5</ymax></bndbox></object></annotation>", []string{xml, `"one"`}},
	} {
		os.Remove(xml)
		if tc.xml != "" {
			write(t, xml, tc.xml)
		}
		err := build(tc.table)
		if err == nil {
			t.Errorf("%s: no error", tc.name)
			continue
		}
		for _, w := range tc.want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("%s: %v does not say %q", tc.name, err, w)
			}
		}
	}
	for _, bad := range []map[string]any{
		vocDetSpec(root, "img_prefix", []string{"a", "b"}),
		vocDetSpec(root, "classes", []string{"dog", "dog"}),
		vocDetSpec(root, "min_size", 2.0, "test_mode", true),
	} {
		if err := build(bad); err == nil {
			t.Errorf("%v built", bad)
		}
	}
}

// The training pipeline of mmselfsup's VOC07+12 Faster R-CNN (multi-scale keep-ratio
// Resize, RandomFlip, Normalize, Pad /32, DefaultFormatBundle, Collect) gives batches of
// padded images and padded boxes, which this test derives from the XML with mmdet 2.x's
// formulas.
func TestDetTrainPipelineBatches(t *testing.T) {
	root := detFixture(t)
	pipeline := []any{
		map[string]any{"type": "LoadImageFromFile"},
		map[string]any{"type": "LoadAnnotations", "with_bbox": true},
		map[string]any{"type": "Resize", "img_scale": []any{[]int{1333, 96}, []int{1333, 128}}, "multiscale_mode": "value", "keep_ratio": true},
		map[string]any{"type": "RandomFlip", "flip_ratio": 1.0},
		map[string]any{"type": "Normalize", "mean": []float64{123.675, 116.28, 103.53}, "std": []float64{58.395, 57.12, 57.375}, "to_rgb": true},
		map[string]any{"type": "Pad", "size_divisor": 32},
		map[string]any{"type": "DefaultFormatBundle"},
		map[string]any{"type": "Collect", "keys": []string{"img", "gt_bboxes", "gt_labels"}, "max_gt": 3},
	}
	ds := buildDataset(t, "VOCDataset", vocDetSpec(root, "ann_file", []string{"VOC2007/ImageSets/Main/trainval.txt", "VOC2012/ImageSets/Main/trainval.txt"},
		"img_prefix", []string{"VOC2007", "VOC2012"}, "pipeline", pipeline))
	if ds.Normalization() == nil {
		t.Fatal("no Normalize")
	}
	src, _ := AsDetSource(ds.Source)
	batches := oneEpoch(t, ds, 4)
	if len(batches) != 1 || batches[0].Det == nil {
		t.Fatalf("%d batches, det %v", len(batches), batches[0].Det)
	}
	b := batches[0]
	d := b.Det
	if d.MaxGT != 3 || len(d.Boxes) != 4*3*4 || len(d.Labels) != 4*3 || len(d.ScaleFactors) != 8 {
		t.Fatalf("det batch sizes: %+v", d)
	}
	for i := range 4 {
		idx := int(b.Indices[i])
		ann, _ := src.DetAnnotation(idx)
		w, h, _ := src.ImageSize(idx)
		oh, ow, ih, iw := int(b.OriShapes[2*i]), int(b.OriShapes[2*i+1]), int(b.ImgShapes[2*i]), int(b.ImgShapes[2*i+1])
		if ow != w || oh != h {
			t.Errorf("image %d: ori_shape %dx%d, the XML's %dx%d", idx, ow, oh, w, h)
		}
		// keep_ratio: short side 96 or 128 (the long side's cap 1333 never binds here).
		ew96, eh96 := rescaleSize(w, h, 1333, 96)
		ew128, eh128 := rescaleSize(w, h, 1333, 128)
		if (iw != ew96 || ih != eh96) && (iw != ew128 || ih != eh128) {
			t.Errorf("image %d: %dx%d resized to %dx%d", idx, w, h, iw, ih)
		}
		sw, sh := float32(float64(iw)/float64(w)), float32(float64(ih)/float64(h))
		if d.ScaleFactors[2*i] != sw || d.ScaleFactors[2*i+1] != sh {
			t.Errorf("image %d: scale factor %v, want %v %v", idx, d.ScaleFactors[2*i:2*i+2], sw, sh)
		}
		if int(d.Counts[i]) != len(ann.Boxes) {
			t.Errorf("image %d: %d boxes, want %d", idx, d.Counts[i], len(ann.Boxes))
		}
		for j := range d.MaxGT {
			got := [4]float32(d.Boxes[(i*3+j)*4 : (i*3+j)*4+4])
			if j >= len(ann.Boxes) {
				if got != [4]float32{} || d.Labels[i*3+j] != -1 {
					t.Errorf("image %d: slot %d holds %v, label %d", idx, j, got, d.Labels[i*3+j])
				}
				continue
			}
			a := ann.Boxes[j]
			x1, y1, x2, y2 := min(a[0]*sw, float32(iw)), min(a[1]*sh, float32(ih)), min(a[2]*sw, float32(iw)), min(a[3]*sh, float32(ih))
			want := [4]float32{float32(iw) - x2, y1, float32(iw) - x1, y2} // flipped: no -1 in mmdet 2.x
			if got != want || d.Labels[i*3+j] != ann.Labels[j] {
				t.Errorf("image %d box %d: %v label %d, want %v label %d", idx, j, got, d.Labels[i*3+j], want, ann.Labels[j])
			}
		}
		if b.Height%32 != 0 || b.Width%32 != 0 || b.Height < ih || b.Width < iw {
			t.Errorf("batch %dx%d for an image of %dx%d", b.Width, b.Height, iw, ih)
		}
	}
	if len(b.Images) != 4*b.Height*b.Width*3 {
		t.Errorf("%d image bytes for 4 x %dx%d", len(b.Images), b.Width, b.Height)
	}
	if valid := d.Valid(); valid[0] != (d.Counts[0] > 0) || valid[2] {
		t.Errorf("valid %v for counts %v", valid, d.Counts)
	}

	// An image with more boxes than max_gt is an error that names it.
	pipeline[7] = map[string]any{"type": "PackDetInputs", "max_gt": 1}
	write(t, filepath.Join(root, "VOC2007", "ImageSets", "Main", "a.txt"), "a\n")
	vocfixture.WriteXML(filepath.Join(root, "VOC2007", "Annotations", "a.xml"), vocfixture.Annotation{Width: 64, Height: 48, Objects: []vocfixture.Object{
		{Name: "dog", XMin: 1, YMin: 1, XMax: 9, YMax: 9}, {Name: "cat", XMin: 2, YMin: 2, XMax: 9, YMax: 9}}})
	ds = buildDataset(t, "VOCDataset", vocDetSpec(root, "ann_file", "VOC2007/ImageSets/Main/a.txt", "pipeline", pipeline))
	if _, err := ds.Get(0, rand.New(rand.NewPCG(1, 1))); err == nil || !strings.Contains(err.Error(), "a.jpg") || !strings.Contains(err.Error(), "max_gt") {
		t.Errorf("2 boxes with max_gt 1: %v", err)
	}
}

// Test batches, from mmdet 2.x's test pipeline (MultiScaleFlipAug of one scale, no flip):
// no boxes, but each image's shapes and scale factor, to bring detections back to the image
// as decoded.
func TestDetTestPipelineBatches(t *testing.T) {
	root := detFixture(t)
	pipeline := []any{
		map[string]any{"type": "LoadImageFromFile"},
		map[string]any{"type": "MultiScaleFlipAug", "img_scale": []int{1333, 100}, "flip": false, "transforms": []any{
			map[string]any{"type": "Resize", "keep_ratio": true},
			map[string]any{"type": "RandomFlip"},
			map[string]any{"type": "Normalize", "mean": []float64{123.675, 116.28, 103.53}, "std": []float64{58.395, 57.12, 57.375}},
			map[string]any{"type": "Pad", "size_divisor": 32},
			map[string]any{"type": "ImageToTensor", "keys": []string{"img"}},
			map[string]any{"type": "Collect", "keys": []string{"img"}},
		}},
	}
	spec := vocDetSpec(root, "test_mode", true, "pipeline", pipeline)
	ds := buildDataset(t, "VOCDataset", spec)
	n, err := PipelineNormalization(&registry.Env{}, registry.NewSpec(registry.Datasets, "VOCDataset", spec))
	if err != nil || n == nil || ds.Normalization() == nil || n.Mean != ds.Normalization().Mean {
		t.Errorf("the Normalize inside MultiScaleFlipAug: %v, %v, %v", n, err, ds.Normalization())
	}
	b := oneEpoch(t, ds, 5)[0]
	if b.Det == nil || b.Det.MaxGT != 0 || b.Det.Boxes != nil || len(b.Det.ScaleFactors) != 10 {
		t.Fatalf("test batch: %+v", b.Det)
	}
	// d is 20x60: short side 20 -> 100, factor 5, 100x300.
	if b.ImgShapes[6] != 300 || b.ImgShapes[7] != 100 || b.Det.ScaleFactors[6] != 5 || b.Height != 320 {
		t.Errorf("d: img_shape %v, scale %v, batch height %d", b.ImgShapes[6:8], b.Det.ScaleFactors[6:8], b.Height)
	}
}

func TestResizeDrawsMMDetScales(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	value := transform(t, map[string]any{"type": "Resize", "img_scale": []any{[]int{1333, 480}, []int{1333, 800}}, "multiscale_mode": "value", "keep_ratio": true}).(*resize)
	rangeT := transform(t, map[string]any{"type": "Resize", "img_scale": []any{[]int{1333, 480}, []int{1000, 800}}, "keep_ratio": true}).(*resize)
	ratio := transform(t, map[string]any{"type": "Resize", "img_scale": []int{1000, 500}, "ratio_range": []float64{0.5, 1.5}}).(*resize)
	seen := map[[2]int]bool{}
	for range 200 {
		w, h := value.scale(rng)
		seen[[2]int{w, h}] = true
		long, short := rangeT.scale(rng)
		if long < 1000 || long > 1333 || short < 480 || short > 800 {
			t.Fatalf("range drew %d, %d", long, short)
		}
		w, h = ratio.scale(rng)
		if w < 500 || w > 1500 || math.Abs(float64(h)-float64(w)/2) > 1 {
			t.Fatalf("ratio drew %dx%d", w, h)
		}
	}
	if len(seen) != 2 {
		t.Errorf("value drew %v", seen)
	}
	if _, err := registry.Build[Transform](&registry.Env{}, registry.NewSpec(registry.Transforms, "Resize", nil)); err == nil || !strings.Contains(err.Error(), "scale") {
		t.Errorf("a Resize without scale: %v", err)
	}
	for _, bad := range []map[string]any{
		{"type": "Resize", "scale": 10, "img_scale": []int{10, 10}},
		{"type": "Resize", "img_scale": []any{[]int{1, 2}, []int{3, 4}, []int{5, 6}}},
		{"type": "Resize", "img_scale": []any{[]int{1, 2}, []int{3, 4}}, "ratio_range": []float64{0.5, 1}},
	} {
		typ := bad["type"].(string)
		rest := merge(bad)
		delete(rest, "type")
		if _, err := registry.Default.Decode(registry.NewSpec(registry.Transforms, typ, rest)); err == nil {
			t.Errorf("%v decoded", bad)
		}
	}
}

func TestBoxUnawareTransformsRefuseBoxes(t *testing.T) {
	for _, table := range []map[string]any{
		{"type": "RandomCrop", "crop_size": 8},
		{"type": "CenterCrop", "crop_size": 8},
		{"type": "RandomResizedCrop", "size": 8},
		{"type": "ResizeEdge", "scale": 8},
	} {
		s := Sample{Image: formulaImage(16, 16), GT: &DetAnnotation{Boxes: [][4]float32{{1, 1, 4, 4}}, Labels: []int32{0}}}
		if err := transform(t, table).Apply(&s, rand.New(rand.NewPCG(1, 1))); err == nil || !strings.Contains(err.Error(), "boxes") {
			t.Errorf("%v on boxes: %v", table["type"], err)
		}
	}
	s := segSample(16, 8, 4)
	err := transform(t, map[string]any{"type": "LoadAnnotations", "with_bbox": true}).Apply(&s, nil)
	if err == nil || !strings.Contains(err.Error(), "no boxes") {
		t.Errorf("with_bbox on a segmentation sample: %v", err)
	}
}

// COCO128's boxes written as VOC XML read back as the XML's integers - 1, within a pixel of
// the YOLO boxes.
func TestCOCO128AsVOC(t *testing.T) {
	coco, err := shareddata.Dir("coco128-lightly")
	if errors.Is(err, shareddata.ErrAbsent) {
		t.Skip(err)
	}
	if err != nil {
		t.Fatal(err)
	}
	root := t.TempDir()
	classes := []string{"person", "car", "dog"}
	w, err := vocfixture.FromCOCO128(coco, root, classes)
	if err != nil {
		t.Fatal(err)
	}
	ds := buildDataset(t, "VOCDataset", map[string]any{"ann_file": filepath.Join(root, "ImageSets/Main/train.txt"), "img_prefix": root,
		"classes": classes, "pipeline": []any{map[string]any{"type": "LoadImageFromFile"}}})
	src, _ := AsDetSource(ds.Source)
	kept, boxes := 0, 0
	for _, id := range w.Splits["train"] {
		a := w.Annotations[id]
		if len(a.Objects) > 0 && min(a.Width, a.Height) >= 32 {
			kept++
		}
	}
	if ds.Len() != kept || kept < 50 {
		t.Fatalf("%d training images, want the %d with objects of %v", ds.Len(), kept, classes)
	}
	for i, id := range detIDs(t, ds) {
		got, _ := src.DetAnnotation(i)
		a := w.Annotations[id]
		if len(got.Boxes) != len(a.Objects) || len(got.IgnoredBoxes) != 0 {
			t.Fatalf("%s: %d boxes, the XML has %d objects", id, len(got.Boxes), len(a.Objects))
		}
		for j, o := range a.Objects {
			want := [4]float32{float32(o.XMin - 1), float32(o.YMin - 1), float32(o.XMax - 1), float32(o.YMax - 1)}
			if got.Boxes[j] != want || classes[got.Labels[j]] != o.Name {
				t.Errorf("%s box %d: %v %d, want %v %s", id, j, got.Boxes[j], got.Labels[j], want, o.Name)
			}
			boxes++
		}
	}
	if boxes < 200 {
		t.Errorf("only %d boxes", boxes)
	}
	// Within a pixel of the YOLO boxes: the first image's first object, recomputed.
	first := w.Splits["train"][0]
	data, err := os.ReadFile(filepath.Join(coco, "object_detection", "labels", "train2017", first+".txt"))
	if err != nil {
		t.Fatal(err)
	}
	full, err := vocfixture.FromCOCO128(coco, t.TempDir(), nil)
	if err != nil {
		t.Fatal(err)
	}
	a := full.Annotations[first]
	var c, cx, cy, bw, bh float64
	if _, err := fmt.Sscan(strings.SplitN(string(data), "\n", 2)[0], &c, &cx, &cy, &bw, &bh); err != nil {
		t.Fatal(err)
	}
	o := a.Objects[0]
	W, H := float64(a.Width), float64(a.Height)
	for k, v := range [][2]float64{{float64(o.XMin - 1), (cx - bw/2) * W}, {float64(o.YMin - 1), (cy - bh/2) * H}, {float64(o.XMax), (cx + bw/2) * W}, {float64(o.YMax), (cy + bh/2) * H}} {
		if math.Abs(v[0]-v[1]) > 0.5+1e-9 && v[0] != 0 && v[0] != W && v[0] != H {
			t.Errorf("%s object 0 coordinate %d: %v, YOLO's %v", first, k, v[0], v[1])
		}
	}
	if len(full.Classes) != 80 || full.Classes[0] != "person" {
		t.Errorf("COCO classes: %d, first %q", len(full.Classes), full.Classes[0])
	}
}

package datasets

import (
	"context"
	"errors"
	"fmt"
	"image"
	"image/color"
	"image/png"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/BurntSushi/toml"
	"github.com/goselfsup/goselfsup/internal/shareddata"
	"github.com/goselfsup/goselfsup/registry"
)

// writeMask writes a w x h map as a PNG: grey levels, or palette indices with VOC's colours.
func writeMask(t *testing.T, path string, w, h int, palette bool, value func(x, y int) uint8) {
	t.Helper()
	var img image.Image
	if palette {
		pal := make(color.Palette, 256)
		for i := range pal {
			pal[i] = color.RGBA{uint8(i), uint8(255 - i), uint8(i / 2), 255}
		}
		p := image.NewPaletted(image.Rect(0, 0, w, h), pal)
		for y := 0; y < h; y++ {
			for x := 0; x < w; x++ {
				p.SetColorIndex(x, y, value(x, y))
			}
		}
		img = p
	} else {
		g := image.NewGray(image.Rect(0, 0, w, h))
		for y := 0; y < h; y++ {
			for x := 0; x < w; x++ {
				g.SetGray(x, y, color.Gray{value(x, y)})
			}
		}
		img = g
	}
	os.MkdirAll(filepath.Dir(path), 0o755)
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := png.Encode(f, img); err != nil {
		t.Fatal(err)
	}
}

// stripes is a map of vertical stripes of width 4, classes 0, 1, ... n-1, then 255.
func stripes(n int) func(x, y int) uint8 {
	return func(x, y int) uint8 {
		if c := x / 4; c < n {
			return uint8(c)
		}
		return 255
	}
}

func segLoad() []any {
	return []any{map[string]any{"type": "LoadImageFromFile"}, map[string]any{"type": "LoadAnnotations"}, map[string]any{"type": "PackSegInputs"}}
}

// vocFixture lays out VOC2012 with SBD aug maps: a, b in train.txt (SegmentationClass,
// palette PNGs), c, d, e in aug.txt (SegmentationClassAug, grey PNGs), f in val.txt.
func vocFixture(t *testing.T) string {
	root := filepath.Join(t.TempDir(), "VOCdevkit", "VOC2012")
	for i, id := range []string{"a", "b", "c", "d", "e", "f"} {
		w, h := 40+4*i, 30
		writeJPEG(t, filepath.Join(root, "JPEGImages", id+".jpg"), w, h)
		dir := "SegmentationClassAug"
		if id == "a" || id == "b" || id == "f" {
			dir = "SegmentationClass"
		}
		writeMask(t, filepath.Join(root, dir, id+".png"), w, h, dir == "SegmentationClass", stripes(i+2))
	}
	write(t, filepath.Join(root, "ImageSets/Segmentation/train.txt"), "a\nb\n")
	write(t, filepath.Join(root, "ImageSets/Segmentation/aug.txt"), "c\nd\n\ne\n")
	write(t, filepath.Join(root, "ImageSets/Segmentation/val.txt"), "f\n")
	return root
}

func vocSpec(root, ann, seg string, pipeline []any) map[string]any {
	return map[string]any{"type": "PascalVOCDataset", "data_root": root, "ann_file": "ImageSets/Segmentation/" + ann,
		"data_prefix": map[string]any{"img_path": "JPEGImages", "seg_map_path": seg}, "pipeline": pipeline}
}

func oneEpoch(t *testing.T, ds *Dataset, batch int) []*Batch {
	t.Helper()
	l := &Loader{Dataset: ds, BatchSize: batch, Workers: 2, Seed: 5}
	var out []*Batch
	for b, err := range l.Epoch(context.Background(), 0) {
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, b)
	}
	return out
}

func TestPascalVOCAugIsAConcatOfTrainAndAug(t *testing.T) {
	root := vocFixture(t)
	train := vocSpec(root, "train.txt", "SegmentationClass", segLoad())
	aug := vocSpec(root, "aug.txt", "SegmentationClassAug", segLoad())
	ds := buildDataset(t, "ConcatDataset", map[string]any{"datasets": []any{train, aug}})
	if ds.Len() != 5 {
		t.Fatalf("%d samples, want 2 + 3", ds.Len())
	}
	src, ok := ds.Source.(SegSource)
	if !ok || !reflect.DeepEqual(src.Classes(), VOCSegClasses) || len(src.Classes()) != 21 || src.IgnoreIndex() != 255 {
		t.Fatalf("classes %v, ignore %d", ds.Source.Classes(), src.IgnoreIndex())
	}
	if p := src.Palette(); len(p) != 21 || p[1] != [3]uint8{128, 0, 0} || p[20] != [3]uint8{0, 64, 128} {
		t.Fatalf("palette %v", p)
	}
	for _, b := range oneEpoch(t, ds, 1) {
		i := int(b.Indices[0])
		w := 40 + 4*i // the fixture's sizes, in order a..e
		if b.Width != w || b.MaskWidth != w || b.MaskHeight != 30 || len(b.Masks) != w*30 {
			t.Fatalf("sample %d: image %dx%d, map %dx%d", i, b.Width, b.Height, b.MaskWidth, b.MaskHeight)
		}
		want := stripes(i + 2)
		for x := 0; x < w; x++ {
			if b.Masks[29*w+x] != want(x, 29) {
				t.Fatalf("sample %d: map value at x %d is %d, want %d", i, x, b.Masks[29*w+x], want(x, 29))
			}
		}
		if !reflect.DeepEqual(b.OriShapes, []int32{30, int32(w)}) || !reflect.DeepEqual(b.ImgShapes, []int32{30, int32(w)}) {
			t.Fatalf("shapes %v %v", b.OriShapes, b.ImgShapes)
		}
	}
	val := buildDataset(t, "PascalVOCDataset", vocSpec(root, "val.txt", "SegmentationClass", segLoad()))
	if val.Len() != 1 {
		t.Fatalf("val has %d samples", val.Len())
	}
}

func TestSegTestPipelineKeepsTheOriginalMap(t *testing.T) {
	root := vocFixture(t)
	pipeline := []any{map[string]any{"type": "LoadImageFromFile"},
		map[string]any{"type": "Resize", "scale": []int{2048, 512}, "keep_ratio": true},
		map[string]any{"type": "LoadAnnotations"}, map[string]any{"type": "PackSegInputs"}}
	ds := buildDataset(t, "PascalVOCDataset", vocSpec(root, "val.txt", "SegmentationClass", pipeline))
	b := oneEpoch(t, ds, 1)[0]
	// f is 60x30: short side 512 -> 1024x512; the map stays 60x30.
	if b.Width != 1024 || b.Height != 512 || b.MaskWidth != 60 || b.MaskHeight != 30 {
		t.Fatalf("image %dx%d, map %dx%d", b.Width, b.Height, b.MaskWidth, b.MaskHeight)
	}
	if !reflect.DeepEqual(b.OriShapes, []int32{30, 60}) || !reflect.DeepEqual(b.ImgShapes, []int32{512, 1024}) {
		t.Fatalf("ori %v, img %v", b.OriShapes, b.ImgShapes)
	}
}

func TestSegTrainBatchesAreDeterministic(t *testing.T) {
	root := vocFixture(t)
	pipeline := []any{map[string]any{"type": "LoadImageFromFile"}, map[string]any{"type": "LoadAnnotations"},
		map[string]any{"type": "RandomResize", "scale": []int{128, 32}, "ratio_range": []float64{0.5, 2.0}, "keep_ratio": true},
		map[string]any{"type": "RandomCrop", "crop_size": 32, "cat_max_ratio": 0.75},
		map[string]any{"type": "RandomFlip", "prob": 0.5},
		map[string]any{"type": "PhotoMetricDistortion"},
		map[string]any{"type": "Pad", "size": 32},
		map[string]any{"type": "PackSegInputs"}}
	spec := map[string]any{"datasets": []any{vocSpec(root, "train.txt", "SegmentationClass", pipeline), vocSpec(root, "aug.txt", "SegmentationClassAug", pipeline)}}
	a := oneEpoch(t, buildDataset(t, "ConcatDataset", spec), 2)
	b := oneEpoch(t, buildDataset(t, "ConcatDataset", spec), 2)
	if !reflect.DeepEqual(a, b) {
		t.Fatal("two loads of the same epoch differ")
	}
	for _, x := range a {
		if x.Width != 32 || x.Height != 32 || x.MaskWidth != 32 || len(x.Masks) != x.Len()*32*32 || len(x.ImgShapes) != 2*x.Len() {
			t.Fatalf("batch %dx%d, map %dx%d, %d shapes", x.Width, x.Height, x.MaskWidth, x.MaskHeight, len(x.ImgShapes))
		}
	}
}

func TestBaseSegDatasetFolders(t *testing.T) {
	root := t.TempDir()
	for i, name := range []string{"x/one", "two", "x/y/three"} {
		writeJPEG(t, filepath.Join(root, "img", name+"_leftImg8bit.jpg"), 20, 10)
		writeMask(t, filepath.Join(root, "ann", name+"_gt.png"), 20, 10, i == 1, func(x, y int) uint8 { return uint8((x + i) % 3) })
	}
	write(t, filepath.Join(root, "img", "notes.txt"), "not an image")
	table := func(extra map[string]any) map[string]any {
		t := map[string]any{"data_root": root, "img_dir": "img", "ann_dir": "ann",
			"img_suffix": "_leftImg8bit.jpg", "seg_map_suffix": "_gt.png",
			"metainfo": map[string]any{"classes": []any{"a", "b", "c"}}, "pipeline": segLoad()}
		for k, v := range extra {
			t[k] = v
		}
		return t
	}
	ds := buildDataset(t, "BaseSegDataset", table(nil))
	var paths []string
	for i := range ds.Len() {
		s, _ := ds.Source.Sample(i)
		paths = append(paths, strings.TrimPrefix(s.Path, root))
	}
	want := []string{"/img/two_leftImg8bit.jpg", "/img/x/one_leftImg8bit.jpg", "/img/x/y/three_leftImg8bit.jpg"}
	if !reflect.DeepEqual(paths, want) {
		t.Fatalf("paths %v, want %v (sorted, recursive)", paths, want)
	}
	for _, b := range oneEpoch(t, ds, 3) {
		if b.MaskWidth != 20 || len(b.Masks) != 3*200 {
			t.Fatalf("maps %dx%d", b.MaskWidth, b.MaskHeight)
		}
	}
	// reduce_zero_label: 0 -> 255, 1 -> 0, 2 -> 1.
	ds = buildDataset(t, "BaseSegDataset", table(map[string]any{"reduce_zero_label": true}))
	s, err := ds.Get(0, SampleRNG(1, 0, 0)) // "two": (x + 1) % 3
	if err != nil {
		t.Fatal(err)
	}
	if got := s.Mask.Pix[:4]; !reflect.DeepEqual(got, []uint8{0, 1, 255, 0}) {
		t.Fatalf("reduced map starts %v", got)
	}
	// A list file of names.
	write(t, filepath.Join(root, "list.txt"), "x/y/three\n")
	ds = buildDataset(t, "BaseSegDataset", table(map[string]any{"ann_file": "list.txt"}))
	if ds.Len() != 1 {
		t.Fatalf("%d samples from the list", ds.Len())
	}
	// Without classes: a validation error.
	bad := table(nil)
	delete(bad, "metainfo")
	if _, err := registry.Build[*Dataset](&registry.Env{}, registry.NewSpec(registry.Datasets, "BaseSegDataset", bad)); err == nil || !strings.Contains(err.Error(), "classes") {
		t.Fatalf("no classes: %v", err)
	}
}

func TestSegDatasetErrors(t *testing.T) {
	build := func(table map[string]any) error {
		_, err := registry.Build[*Dataset](&registry.Env{}, registry.NewSpec(registry.Datasets, "PascalVOCDataset", table))
		return err
	}
	absent := filepath.Join(t.TempDir(), "VOCdevkit", "VOC2012")
	err := build(vocSpec(absent, "train.txt", "SegmentationClass", segLoad()))
	if err == nil || !strings.Contains(err.Error(), absent) || !strings.Contains(err.Error(), `"Datasets"`) {
		t.Fatalf("absent data: %v", err)
	}
	root := vocFixture(t)
	if err := build(vocSpec(root, "nope.txt", "SegmentationClass", segLoad())); err == nil || !strings.Contains(err.Error(), "nope.txt") || !strings.Contains(err.Error(), `"Datasets"`) {
		t.Fatalf("absent list: %v", err)
	}
	write(t, filepath.Join(root, "ImageSets/Segmentation/bad.txt"), "a\nghost\n")
	if err := build(vocSpec(root, "bad.txt", "SegmentationClass", segLoad())); err == nil || !strings.Contains(err.Error(), "bad.txt:2") || !strings.Contains(err.Error(), "ghost.jpg") {
		t.Fatalf("a list entry without its image: %v", err)
	}
	writeJPEG(t, filepath.Join(root, "JPEGImages", "ghost.jpg"), 8, 8)
	if err := build(vocSpec(root, "bad.txt", "SegmentationClass", segLoad())); err == nil || !strings.Contains(err.Error(), filepath.Join("SegmentationClass", "ghost.png")) {
		t.Fatalf("a list entry without its map: %v", err)
	}
}

func TestBadMapsAreLoadErrorsThatSkipCorruptReplaces(t *testing.T) {
	root := vocFixture(t)
	// b's map is the wrong size; d's has the value 30 (classes are 0-20); e's is not a PNG.
	writeMask(t, filepath.Join(root, "SegmentationClass", "b.png"), 10, 10, true, stripes(2))
	writeMask(t, filepath.Join(root, "SegmentationClassAug", "d.png"), 52, 30, false, func(x, y int) uint8 { return uint8(x) })
	write(t, filepath.Join(root, "SegmentationClassAug", "e.png"), "not a png")
	for _, c := range []struct {
		ann, dir, id, msg string
		index             int
	}{
		{"train.txt", "SegmentationClass", "b", "is 10x10 but its image", 1},
		{"aug.txt", "SegmentationClassAug", "d", "has the value 21 at (x 21, y 0)", 1},
		{"aug.txt", "SegmentationClassAug", "e", "decoding the segmentation map", 2},
	} {
		ds := buildDataset(t, "PascalVOCDataset", vocSpec(root, c.ann, c.dir, segLoad()))
		_, err := ds.Get(c.index, SampleRNG(1, 0, 0))
		var le *LoadError
		if !errors.As(err, &le) || !strings.Contains(err.Error(), filepath.Join(c.dir, c.id+".png")) || !strings.Contains(err.Error(), c.msg) {
			t.Fatalf("%s: %v", c.id, err)
		}
		// Without skip_corrupt the epoch stops with that error; with it, the sample is
		// replaced and reported.
		l := &Loader{Dataset: ds, BatchSize: 1, Seed: 1}
		var failed error
		for _, err := range l.Epoch(context.Background(), 0) {
			if err != nil {
				failed = err
			}
		}
		if failed == nil || !strings.Contains(failed.Error(), c.dir) { // aug.txt stops at d, before e
			t.Fatalf("%s: the epoch did not stop on it: %v", c.id, failed)
		}
		spec := vocSpec(root, c.ann, c.dir, segLoad())
		spec["skip_corrupt"] = true
		ds = buildDataset(t, "PascalVOCDataset", spec)
		var skipped atomic.Int32
		l = &Loader{Dataset: ds, BatchSize: 1, Seed: 1, OnSkip: func(path string, err error) {
			if strings.HasSuffix(path, c.id+".png") {
				skipped.Add(1)
			}
		}}
		n := 0
		for b, err := range l.Epoch(context.Background(), 0) {
			if err != nil {
				t.Fatalf("%s with skip_corrupt: %v", c.id, err)
			}
			n += b.Len()
		}
		if n != ds.Len() || skipped.Load() == 0 {
			t.Fatalf("%s with skip_corrupt: %d samples, %d skips", c.id, n, skipped.Load())
		}
	}
}

// TestCOCO128SemanticMaps reads COCO128's class-index maps (COCO panoptic category ids,
// 0 unlabelled, at most 200) with BaseSegDataset through the benchmark's train pipeline.
func TestCOCO128SemanticMaps(t *testing.T) {
	dir, err := shareddata.Dir("coco128-lightly")
	if errors.Is(err, shareddata.ErrAbsent) {
		t.Skip(err)
	}
	if err != nil {
		t.Fatal(err)
	}
	maps, err := filepath.Glob(filepath.Join(dir, "semantic_segmentation", "masks", "train2017", "*.png"))
	if err != nil || len(maps) == 0 {
		t.Fatalf("no maps under %s: %v", dir, err)
	}
	// 28 of the images have no map: list those that have one.
	var names []string
	for _, m := range maps {
		names = append(names, strings.TrimSuffix(filepath.Base(m), ".png"))
	}
	list := filepath.Join(t.TempDir(), "train.txt")
	write(t, list, strings.Join(names, "\n")+"\n")
	classes := make([]any, 201)
	for i := range classes {
		classes[i] = fmt.Sprint(i)
	}
	pipeline := []any{map[string]any{"type": "LoadImageFromFile"}, map[string]any{"type": "LoadAnnotations"},
		map[string]any{"type": "RandomResize", "scale": []int{2048, 512}, "ratio_range": []float64{0.5, 2.0}, "keep_ratio": true},
		map[string]any{"type": "RandomCrop", "crop_size": 512, "cat_max_ratio": 0.75},
		map[string]any{"type": "RandomFlip", "prob": 0.5},
		map[string]any{"type": "PhotoMetricDistortion"},
		map[string]any{"type": "Pad", "size": 512},
		map[string]any{"type": "PackSegInputs"}}
	ds := buildDataset(t, "BaseSegDataset", map[string]any{"data_root": dir, "ann_file": list,
		"data_prefix": map[string]any{"img_path": "images/train2017", "seg_map_path": "semantic_segmentation/masks/train2017"},
		"metainfo":    map[string]any{"classes": classes}, "pipeline": pipeline})
	if ds.Len() != len(maps) {
		t.Fatalf("%d samples for %d maps", ds.Len(), len(maps))
	}
	l := &Loader{Dataset: ds, BatchSize: 4, Workers: 2, Seed: 3}
	seen := map[uint8]bool{}
	n := 0
	for b, err := range l.Epoch(context.Background(), 0) {
		if err != nil {
			t.Fatal(err)
		}
		if b.Width != 512 || b.Height != 512 || b.MaskWidth != 512 || len(b.Masks) != b.Len()*512*512 {
			t.Fatalf("batch %dx%d, map %dx%d", b.Width, b.Height, b.MaskWidth, b.MaskHeight)
		}
		for _, v := range b.Masks {
			seen[v] = true
		}
		if n += b.Len(); n >= 16 {
			break
		}
	}
	if !seen[0] || !seen[255] || len(seen) < 5 {
		t.Fatalf("map values seen: %v", seen)
	}
}

// The benchmark's data config, written as a TOML config writes it, decodes and builds.
func TestVOC12AugConfigFromTOML(t *testing.T) {
	root := vocFixture(t)
	text := `
type = "ConcatDataset"

[[datasets]]
type = "PascalVOCDataset"
data_root = "` + filepath.ToSlash(root) + `"
data_prefix = { img_path = "JPEGImages", seg_map_path = "SegmentationClass" }
ann_file = "ImageSets/Segmentation/train.txt"
pipeline = [
  { type = "LoadImageFromFile" },
  { type = "LoadAnnotations" },
  { type = "RandomResize", scale = [2048, 512], ratio_range = [0.5, 2.0], keep_ratio = true },
  { type = "RandomCrop", crop_size = [512, 512], cat_max_ratio = 0.75 },
  { type = "RandomFlip", prob = 0.5 },
  { type = "PhotoMetricDistortion" },
  { type = "Pad", size = [512, 512], pad_val = { img = 0, seg = 255 } },
  { type = "PackSegInputs" },
]

[[datasets]]
type = "BaseSegDataset"
data_root = "` + filepath.ToSlash(root) + `"
img_dir = "JPEGImages"
ann_dir = "SegmentationClassAug"
ann_file = "ImageSets/Segmentation/aug.txt"
ignore_index = 255
metainfo = { classes = ["background", "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair", "cow", "diningtable", "dog", "horse", "motorbike", "person", "pottedplant", "sheep", "sofa", "train", "tvmonitor"], palette = [[0, 0, 0], [128, 0, 0], [0, 128, 0], [128, 128, 0], [0, 0, 128], [128, 0, 128], [0, 128, 128], [128, 128, 128], [64, 0, 0], [192, 0, 0], [64, 128, 0], [192, 128, 0], [64, 0, 128], [192, 0, 128], [64, 128, 128], [192, 128, 128], [0, 64, 0], [128, 64, 0], [0, 192, 0], [128, 192, 0], [0, 64, 128]] }
pipeline = [{ type = "LoadImageFromFile" }, { type = "LoadAnnotations" }, { type = "Pad", size = 512, seg_pad_val = 255 }, { type = "PackSegInputs" }]
`
	var table map[string]any
	if _, err := toml.Decode(text, &table); err != nil {
		t.Fatal(err)
	}
	delete(table, "type")
	ds := buildDataset(t, "ConcatDataset", table)
	if ds.Len() != 5 {
		t.Fatalf("%d samples", ds.Len())
	}
	for _, b := range oneEpoch(t, ds, 5) {
		if b.Width != 512 || b.MaskWidth != 512 || len(b.ImgShapes) != 10 {
			t.Fatalf("batch %dx%d, map %dx%d", b.Width, b.Height, b.MaskWidth, b.MaskHeight)
		}
	}
}

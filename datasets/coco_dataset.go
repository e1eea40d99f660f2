package datasets

import (
	"cmp"
	"errors"
	"fmt"
	"math"
	"os"
	"slices"

	"github.com/goselfsup/goselfsup/coco"
	"github.com/goselfsup/goselfsup/registry"
)

// CocoDatasetConfig is mmdet 2.x's CocoDataset: COCO instances (instances_train2017.json and
// the like) for detection and instance segmentation. ann_file is the annotation file and
// img_prefix the folder of the images it names.
//
// Classes and labels: the categories of the file, or with classes only those of these names,
// sorted by id (COCO's own order), are the dataset's classes; label l is the l-th of them
// (mmdet 2.x's cat_ids and cat2label: category ids 1 to 90 become labels 0 to 79).
//
// Each image's annotation is mmdet 2.x's _parse_ann_info: an annotation is skipped when its
// box (x, y, w, h) does not overlap the image (the intersection's width times height is 0),
// when its area is not positive or w < 1 or h < 1, and when its category is not one of the
// classes; otherwise its box is [x, y, x + w, y + h] (not clipped); a crowd (iscrowd) box is
// ignored (gt_bboxes_ignore), the others are ground truth boxes with their labels and masks
// (the polygons or RLE of the annotation, decoded by LoadAnnotations with with_mask).
//
// Outside test_mode, mmdet 2.x's _filter_imgs drops images narrower or lower than 32 pixels
// and, with filter_empty_gt, images without an annotation of the classes. As in mmdet, any
// annotation of the classes counts there, even a crowd or a skipped one: an image whose only
// annotations are crowds stays and trains with no boxes (COCO train2017 has none such: the
// filter leaves 117,266 images either way).
//
// Bad annotations, which mmdet would skip silently or fail on later, are skipped with a
// warning (Warnings on the source): a box outside its image or degenerate (the skips above,
// named), an annotation whose image id is not among the images,
// one whose category is not among the categories, polygons with fewer than 3 points or an
// odd number of coordinates (dropped as mmdet's process_polygons does; the annotation is
// skipped when none remains), and an RLE whose size is not its image's. A file that cannot
// be read or parsed, repeated image, annotation or category ids, and images without a
// positive size are errors naming the file. A non-crowd annotation without a segmentation
// (a box-only file) keeps its box; LoadAnnotations with with_mask then fails on its image
// with a LoadError naming the annotation (skip_corrupt replaces the sample). mmdet's
// "ignore" key of annotations is not read (COCO's files have none).
type CocoDatasetConfig struct {
	DataRoot      string          `toml:"data_root" doc:"the folder a relative ann_file and img_prefix are under; empty: the working directory"`
	AnnFile       string          `toml:"ann_file" doc:"the COCO annotation file, such as annotations/instances_train2017.json" required:"true"`
	ImgPrefix     string          `toml:"img_prefix" doc:"the folder of the images, such as train2017/ (mmdet 2.x); or data_prefix"`
	DataPrefix    DataPrefix      `toml:"data_prefix" doc:"the folder of the images as mmengine names it (a string or { img_path = ... }); or img_prefix"`
	Classes       []string        `toml:"classes" doc:"the names of the categories to keep (mmdet 2.x's classes); labels follow the categories' ids; empty: all the file's categories"`
	FilterEmptyGT bool            `toml:"filter_empty_gt" doc:"outside test_mode, drop the images without an annotation of the classes (a crowd one counts, as in mmdet 2.x)"`
	Pipeline      []registry.Spec `toml:"pipeline" registry:"transforms" doc:"the transforms that make each sample a model input, in order; the first is LoadImageFromFile"`
	TestMode      bool            `toml:"test_mode" doc:"a test set: no image is filtered out"`
	SkipCorrupt   bool            `toml:"skip_corrupt" doc:"replace an image that cannot be read by another sample, and count and log it; otherwise stop the run; goselfsup's own key"`
}

func init() {
	registry.Add(registry.Datasets, "CocoDataset", "COCO instances: boxes and instance masks from a COCO annotation file (mmdet 2.x)",
		func() *CocoDatasetConfig { return &CocoDatasetConfig{FilterEmptyGT: true} })
}

func (c *CocoDatasetConfig) Validate() error {
	var errs []error
	if c.AnnFile == "" {
		errs = append(errs, registry.FieldErrorf("ann_file", "is required, such as annotations/instances_train2017.json"))
	}
	switch {
	case c.ImgPrefix == "" && c.DataPrefix.ImgPath == "":
		errs = append(errs, registry.FieldErrorf("img_prefix", "(or data_prefix) is required, such as train2017/"))
	case c.ImgPrefix != "" && c.DataPrefix.ImgPath != "":
		errs = append(errs, registry.FieldErrorf("img_prefix", "and data_prefix both name the image folder: give one"))
	}
	if c.DataPrefix.AnnPath != "" || c.DataPrefix.SegMapPath != "" {
		errs = append(errs, registry.FieldErrorf("data_prefix", "takes only the image folder (img_path) for CocoDataset"))
	}
	seen := map[string]bool{}
	for _, name := range c.Classes {
		if seen[name] {
			errs = append(errs, registry.FieldErrorf("classes", "names %q twice", name))
		}
		seen[name] = true
	}
	return errors.Join(errs...)
}

// COCOSource is the source of a CocoDataset: a DetSource that also gives what a COCO
// evaluation needs, the annotation file as read and the ids of its images and categories,
// and the warnings about the annotations it skipped. Get it from a dataset with
// AsCOCOSource.
type COCOSource interface {
	DetSource
	// COCO returns the annotation file as read: every image, annotation and category,
	// before any filtering or skipping (pycocotools' COCO(ann_file), which COCOeval scores
	// against). Shared: callers must not change it.
	COCO() *coco.Dataset
	// ImageID returns sample i's COCO image id (mmdet 2.x's img_ids[i]).
	ImageID(i int) int64
	// CatIDs returns the category ids in label order: label l is category CatIDs()[l]
	// (mmdet 2.x's cat_ids).
	CatIDs() []int64
	// Warnings describes the annotations skipped as bad, each naming the file and the
	// annotation id: the first MaxWarnings, then a line with the number of the others.
	Warnings() []string
}

// MaxWarnings is the number of skipped annotations a COCOSource describes one by one.
const MaxWarnings = 20

// AsCOCOSource returns src as a COCOSource when it is one (a CocoDataset's source).
func AsCOCOSource(src Source) (COCOSource, bool) {
	s, ok := src.(COCOSource)
	return s, ok
}

// Build reads the annotation file, parses every image's annotation, filters the images
// outside test_mode and checks that each image file is there.
func (c *CocoDatasetConfig) Build(env *registry.Env) (any, error) {
	annFile := underRoot(c.DataRoot, c.AnnFile)
	prefix := c.ImgPrefix
	if prefix == "" {
		prefix = c.DataPrefix.ImgPath
	}
	imgRoot := underRoot(c.DataRoot, prefix)
	if fi, err := os.Stat(imgRoot); err != nil || !fi.IsDir() {
		return nil, missing("COCO image folder (img_prefix)", imgRoot)
	}
	if _, err := os.Stat(annFile); err != nil {
		return nil, missing("COCO annotation file (ann_file)", annFile)
	}
	d, err := coco.Load(annFile)
	if err != nil {
		return nil, err // it names the file
	}
	src, err := newCOCOSource(d, annFile, c.Classes, c.TestMode, c.FilterEmptyGT)
	if err != nil {
		return nil, err
	}
	for i, name := range src.files {
		p, err := within(imgRoot, name)
		if err != nil {
			return nil, fmt.Errorf("%s: image %d: %w", annFile, src.ids[i], err)
		}
		if _, err := os.Stat(p); err != nil {
			return nil, fmt.Errorf("%s: image %d: %s not found; %s", annFile, src.ids[i], p, DataLayoutHelp)
		}
		src.paths = append(src.paths, p)
		src.labels = append(src.labels, -1)
	}
	return fileDataset(env, source{Pipeline: c.Pipeline, TestMode: c.TestMode, SkipCorrupt: c.SkipCorrupt}, src)
}

// cocoSource is a CocoDataset's list of images, their annotations and the file they come
// from.
type cocoSource struct {
	fileSource
	data     *coco.Dataset
	files    []string // the images' file names, as the annotation file gives them
	ids      []int64  // the images' ids
	anns     []*DetAnnotation
	sizes    [][2]int // width, height
	catIDs   []int64
	warnings []string
	skipped  int // the warnings beyond MaxWarnings
}

// newCOCOSource parses d (read from file) as mmdet 2.x's CocoDataset does; the paths of the
// images are left to the caller.
func newCOCOSource(d *coco.Dataset, file string, classes []string, testMode, filterEmptyGT bool) (*cocoSource, error) {
	src := &cocoSource{data: d}
	cats := map[int64]string{}
	for _, cat := range d.Categories {
		if _, dup := cats[cat.ID]; dup {
			return nil, fmt.Errorf("%s: category id %d appears twice", file, cat.ID)
		}
		cats[cat.ID] = cat.Name
	}
	sorted := slices.Clone(d.Categories)
	slices.SortStableFunc(sorted, func(a, b coco.Category) int { return cmp.Compare(a.ID, b.ID) })
	wanted := map[string]bool{}
	for _, name := range classes {
		wanted[name] = true
	}
	label := map[int64]int32{}
	var names []string
	for _, cat := range sorted {
		if len(classes) > 0 && !wanted[cat.Name] {
			continue
		}
		delete(wanted, cat.Name)
		label[cat.ID] = int32(len(src.catIDs))
		src.catIDs = append(src.catIDs, cat.ID)
		names = append(names, cat.Name)
	}
	for _, name := range classes {
		if wanted[name] {
			return nil, fmt.Errorf("%s: classes names %q, which no category of the file has", file, name)
		}
	}
	if len(src.catIDs) == 0 {
		return nil, fmt.Errorf("%s: no category", file)
	}
	src.classes = names

	images := make(map[int64]int, len(d.Images))
	for i, img := range d.Images {
		if _, dup := images[img.ID]; dup {
			return nil, fmt.Errorf("%s: image id %d appears twice", file, img.ID)
		}
		if img.Width < 1 || img.Height < 1 {
			return nil, fmt.Errorf("%s: image %d (%s) has the size %dx%d", file, img.ID, img.FileName, img.Width, img.Height)
		}
		images[img.ID] = i
	}
	// pycocotools' imgToAnns: each image's annotations, in the file's order.
	perImage := make([][]int, len(d.Images))
	annIDs := make(map[int64]bool, len(d.Annotations))
	for k, a := range d.Annotations {
		if annIDs[a.ID] {
			return nil, fmt.Errorf("%s: annotation id %d appears twice (mmdet 2.x: annotation ids are not unique)", file, a.ID)
		}
		annIDs[a.ID] = true
		i, ok := images[a.ImageID]
		if !ok {
			src.warn("%s: annotation %d: its image id %d is not among the images, skipped", file, a.ID, a.ImageID)
			continue
		}
		if _, ok := cats[a.CategoryID]; !ok {
			src.warn("%s: annotation %d: its category id %d is not among the categories, skipped", file, a.ID, a.CategoryID)
			continue
		}
		perImage[i] = append(perImage[i], k)
	}

	for i, img := range d.Images {
		if !testMode { // mmdet 2.x's _filter_imgs(min_size=32)
			if min(img.Width, img.Height) < 32 {
				continue
			}
			if filterEmptyGT && !slices.ContainsFunc(perImage[i], func(k int) bool { _, ok := label[d.Annotations[k].CategoryID]; return ok }) {
				continue
			}
		}
		src.files = append(src.files, img.FileName)
		src.ids = append(src.ids, img.ID)
		src.sizes = append(src.sizes, [2]int{img.Width, img.Height})
		src.anns = append(src.anns, src.parse(file, img, perImage[i], label))
	}
	if len(src.files) == 0 {
		return nil, fmt.Errorf("%s: no image left: each has no annotation of the %d classes, or is smaller than 32 pixels (filter_empty_gt, test_mode)", file, len(src.catIDs))
	}
	return src, nil
}

// parse is mmdet 2.x's _parse_ann_info for one image: its annotations anns (indices into
// the file's), the categories' labels.
func (s *cocoSource) parse(file string, img coco.Image, anns []int, label map[int64]int32) *DetAnnotation {
	out := &DetAnnotation{}
	masks := &cocoMasks{file: file, w: img.Width, h: img.Height}
	W, H := float64(img.Width), float64(img.Height)
	for _, k := range anns {
		a := &s.data.Annotations[k]
		x1, y1, w, h := a.BBox[0], a.BBox[1], a.BBox[2], a.BBox[3]
		interW := math.Max(0, math.Min(x1+w, W)-math.Max(x1, 0))
		interH := math.Max(0, math.Min(y1+h, H)-math.Max(y1, 0))
		if interW*interH == 0 {
			s.warn("%s: annotation %d: its box %v does not overlap its image %d (%dx%d), skipped (as mmdet 2.x)", file, a.ID, a.BBox, img.ID, img.Width, img.Height)
			continue
		}
		if a.Area <= 0 || w < 1 || h < 1 {
			s.warn("%s: annotation %d: its box %v or area %g is degenerate (w or h under 1, or area not positive), skipped (as mmdet 2.x)", file, a.ID, a.BBox, a.Area)
			continue
		}
		l, ok := label[a.CategoryID]
		if !ok {
			continue
		}
		box := [4]float32{float32(x1), float32(y1), float32(x1 + w), float32(y1 + h)}
		if a.IsCrowd != 0 {
			out.IgnoredBoxes = append(out.IgnoredBoxes, box)
			out.IgnoredLabels = append(out.IgnoredLabels, l)
			continue
		}
		seg, ok := s.checkSegmentation(file, img, a)
		if !ok {
			continue
		}
		out.Boxes = append(out.Boxes, box)
		out.Labels = append(out.Labels, l)
		masks.annIDs = append(masks.annIDs, a.ID)
		masks.segs = append(masks.segs, seg)
	}
	out.Masks = masks
	return out
}

// checkSegmentation returns a's segmentation with its bad polygons dropped, and false (with
// a warning) when it must be skipped: no polygon left, or an RLE of another size than its
// image. An annotation without a segmentation (a box-only file) stays; decoding its mask is
// an error.
func (s *cocoSource) checkSegmentation(file string, img coco.Image, a *coco.Annotation) (coco.Segmentation, bool) {
	seg := a.Segmentation
	if r := seg.RLE; r != nil {
		if r.H != img.Height || r.W != img.Width {
			s.warn("%s: annotation %d: its RLE is %dx%d (w x h) but its image %d is %dx%d, skipped", file, a.ID, r.W, r.H, img.ID, img.Width, img.Height)
			return seg, false
		}
		return seg, true
	}
	if len(seg.Polygons) == 0 {
		return seg, true
	}
	valid := make([][]float64, 0, len(seg.Polygons))
	for _, p := range seg.Polygons {
		if goodPolygon(p) {
			valid = append(valid, p)
		}
	}
	switch {
	case len(valid) == 0:
		s.warn("%s: annotation %d: none of its %d polygons has 3 points or more (and an even number of finite coordinates), skipped", file, a.ID, len(seg.Polygons))
		return seg, false
	case len(valid) < len(seg.Polygons):
		s.warn("%s: annotation %d: %d of its %d polygons have fewer than 3 points (or an odd number of coordinates, or one not finite), dropped",
			file, a.ID, len(seg.Polygons)-len(valid), len(seg.Polygons))
	}
	return coco.Segmentation{Polygons: valid}, true
}

// goodPolygon is mmdet's process_polygons' test (an even number of coordinates, at least
// 6), with coco.FromPolygon's: finite coordinates of at most 1e8.
func goodPolygon(p []float64) bool {
	if len(p)%2 != 0 || len(p) < 6 {
		return false
	}
	for _, v := range p {
		if math.IsNaN(v) || math.Abs(v) > 1e8 {
			return false
		}
	}
	return true
}

func (s *cocoSource) warn(format string, args ...any) {
	if len(s.warnings) < MaxWarnings {
		s.warnings = append(s.warnings, fmt.Sprintf(format, args...))
		return
	}
	s.skipped++
}

func (s *cocoSource) Sample(i int) (Sample, error) {
	smp, err := s.fileSource.Sample(i)
	if err != nil {
		return smp, err
	}
	smp.Det = s.anns[i]
	return smp, nil
}

func (s *cocoSource) DetAnnotation(i int) (*DetAnnotation, error) {
	if i < 0 || i >= len(s.anns) {
		return nil, fmt.Errorf("sample %d out of range [0, %d)", i, len(s.anns))
	}
	return s.anns[i], nil
}

func (s *cocoSource) ImageSize(i int) (int, int, error) {
	if i < 0 || i >= len(s.sizes) {
		return 0, 0, fmt.Errorf("sample %d out of range [0, %d)", i, len(s.sizes))
	}
	return s.sizes[i][0], s.sizes[i][1], nil
}

func (s *cocoSource) COCO() *coco.Dataset { return s.data }

func (s *cocoSource) ImageID(i int) int64 { return s.ids[i] }

func (s *cocoSource) CatIDs() []int64 { return s.catIDs }

func (s *cocoSource) Warnings() []string {
	if s.skipped == 0 {
		return s.warnings
	}
	return append(slices.Clip(s.warnings), fmt.Sprintf("and %d more annotations skipped or changed", s.skipped))
}

// cocoMasks are the masks of an image's ground truth boxes, as the annotation file gives
// them (mmdet 2.x's ann_info masks), decoded as pycocotools' annToRLE and decode do.
type cocoMasks struct {
	file   string
	w, h   int
	annIDs []int64
	segs   []coco.Segmentation
}

func (m *cocoMasks) DecodeMasks() (*InstanceMasks, error) {
	out := NewInstanceMasks(len(m.segs), m.w, m.h)
	for i, seg := range m.segs {
		r, err := seg.ToRLE(m.h, m.w)
		if err != nil {
			return nil, fmt.Errorf("%s: annotation %d: %w", m.file, m.annIDs[i], err)
		}
		copy(out.At(i), r.Decode())
	}
	return out, nil
}

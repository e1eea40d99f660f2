package datasets

import (
	"encoding/xml"
	"errors"
	"fmt"
	"image"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/goselfsup/goselfsup/registry"
)

// VOCDatasetConfig is mmdet 2.x's VOCDataset (an XMLDataset): PASCAL VOC detection in the
// VOCdevkit layout. ann_file lists the image ids (ImageSets/Main/trainval.txt) and
// img_prefix is the year's folder, holding JPEGImages/<id>.jpg and Annotations/<id>.xml.
// Each object of the XML is a box [xmin, ymin, xmax, ymax] - 1 (all four: mmdet 2.x's
// legacy 0-based coordinates), difficult ones ignored (gt_bboxes_ignore). Lists of ann_file
// and img_prefix make one dataset of their concatenation, as mmdet 2.x's build_dataset
// does: VOC07+12 is ann_file = [VOC2007 trainval, VOC2012 trainval] with img_prefix =
// [VOC2007/, VOC2012/] (a ConcatDataset of two VOCDatasets is the same).
//
// Outside test_mode, mmdet 2.x's XMLDataset._filter_imgs drops images smaller than 32
// pixels on a side and, with filter_empty_gt, images without an object of the classes;
// as in mmdet, a difficult object counts, so an image whose objects are all difficult stays
// and trains with no boxes.
type VOCDatasetConfig struct {
	DataRoot      string              `toml:"data_root" doc:"the folder a relative ann_file and img_prefix are under (mmdet 2.x); empty: the working directory"`
	AnnFile       registry.StringList `toml:"ann_file" doc:"the list of image ids, such as VOCdevkit/VOC2007/ImageSets/Main/trainval.txt, or a list of them (one dataset of their concatenation)" required:"true"`
	ImgPrefix     registry.StringList `toml:"img_prefix" doc:"the year's folder, such as VOCdevkit/VOC2007/, holding img_subdir and ann_subdir; a list to go with a list of ann_file" required:"true"`
	ImgSubdir     string              `toml:"img_subdir" doc:"the folder of the images <id>.jpg under img_prefix"`
	AnnSubdir     string              `toml:"ann_subdir" doc:"the folder of the annotations <id>.xml under img_prefix"`
	Classes       []string            `toml:"classes" doc:"the class names in label order (mmdet 2.x's classes), the XML objects of other names left out; empty: VOC's twenty, where an unknown name is an error"`
	FilterEmptyGT bool                `toml:"filter_empty_gt" doc:"outside test_mode, drop the images without an object of the classes (a difficult one counts, as in mmdet 2.x)"`
	MinSize       float64             `toml:"min_size" doc:"boxes narrower or lower than this (in the XML's pixels) are ignored, as difficult ones are; 0: none; not in test_mode"`
	Pipeline      []registry.Spec     `toml:"pipeline" registry:"transforms" doc:"the transforms that make each sample a model input, in order; the first is LoadImageFromFile"`
	TestMode      bool                `toml:"test_mode" doc:"a test set: no image is filtered out"`
	SkipCorrupt   bool                `toml:"skip_corrupt" doc:"replace an image that cannot be read by another sample, and count and log it; otherwise stop the run; goselfsup's own key"`
}

func init() {
	registry.Add(registry.Datasets, "VOCDataset", "PASCAL VOC detection: boxes from the XML annotations (mmdet 2.x; VOCdevkit layout)",
		func() *VOCDatasetConfig {
			return &VOCDatasetConfig{ImgSubdir: "JPEGImages", AnnSubdir: "Annotations", FilterEmptyGT: true}
		})
}

func (c *VOCDatasetConfig) Validate() error {
	var errs []error
	if len(c.AnnFile) == 0 {
		errs = append(errs, registry.FieldErrorf("ann_file", "is required, such as VOCdevkit/VOC2007/ImageSets/Main/trainval.txt"))
	}
	if len(c.ImgPrefix) == 0 {
		errs = append(errs, registry.FieldErrorf("img_prefix", "is required, such as VOCdevkit/VOC2007/"))
	} else if len(c.ImgPrefix) > 1 && len(c.ImgPrefix) != len(c.AnnFile) {
		errs = append(errs, registry.FieldErrorf("img_prefix", "has %d folders for %d ann_file lists: give one, or one for each", len(c.ImgPrefix), len(c.AnnFile)))
	}
	seen := map[string]bool{}
	for _, name := range c.Classes {
		if seen[name] {
			errs = append(errs, registry.FieldErrorf("classes", "names %q twice", name))
		}
		seen[name] = true
	}
	if c.MinSize < 0 {
		errs = append(errs, registry.FieldErrorf("min_size", "must not be negative, got %g", c.MinSize))
	}
	if c.MinSize > 0 && c.TestMode {
		errs = append(errs, registry.FieldErrorf("min_size", "ignores boxes in training: not with test_mode (mmdet 2.x asserts it)"))
	}
	return errors.Join(errs...)
}

// classes are the dataset's classes: classes, or VOC's twenty.
func (c *VOCDatasetConfig) classes() []string {
	if len(c.Classes) > 0 {
		return c.Classes
	}
	return VOCClasses
}

// Build reads the lists and every annotation, filters the images outside test_mode and
// checks that each image file is there.
func (c *VOCDatasetConfig) Build(env *registry.Env) (any, error) {
	if len(c.AnnFile) == 1 {
		return c.buildOne(env, c.AnnFile[0], c.ImgPrefix[0])
	}
	parts := make([]*Dataset, len(c.AnnFile))
	for i, ann := range c.AnnFile {
		prefix := c.ImgPrefix[0]
		if len(c.ImgPrefix) > 1 {
			prefix = c.ImgPrefix[i]
		}
		d, err := c.buildOne(env, ann, prefix)
		if err != nil {
			return nil, fmt.Errorf("ann_file[%d]: %w", i, err)
		}
		parts[i] = d
	}
	return concat(parts)
}

func (c *VOCDatasetConfig) buildOne(env *registry.Env, annFile, imgPrefix string) (*Dataset, error) {
	annFile, imgPrefix = underRoot(c.DataRoot, annFile), underRoot(c.DataRoot, imgPrefix)
	if fi, err := os.Stat(imgPrefix); err != nil || !fi.IsDir() {
		return nil, missing("VOC folder (img_prefix)", imgPrefix)
	}
	imgRoot, annRoot := filepath.Join(imgPrefix, c.ImgSubdir), filepath.Join(imgPrefix, c.AnnSubdir)
	for _, d := range [][2]string{{"image folder", imgRoot}, {"annotation folder", annRoot}} {
		if fi, err := os.Stat(d[1]); err != nil || !fi.IsDir() {
			return nil, missing(d[0], d[1])
		}
	}
	ids, err := readIDs(annFile)
	if err != nil {
		return nil, err
	}
	classes := c.classes()
	index := make(map[string]int32, len(classes))
	for i, name := range classes {
		index[name] = int32(i)
	}
	src := &vocDetSource{fileSource: fileSource{classes: slices.Clone(classes)}}
	minSize := c.MinSize
	if c.TestMode {
		minSize = 0
	}
	for _, id := range ids {
		img, err := within(imgRoot, id+".jpg")
		if err != nil {
			return nil, fmt.Errorf("%s: %w", annFile, err)
		}
		xmlPath, err := within(annRoot, id+".xml")
		if err != nil {
			return nil, fmt.Errorf("%s: %w", annFile, err)
		}
		if _, err := os.Stat(img); err != nil {
			return nil, fmt.Errorf("%s: image %s not found; %s", annFile, img, DataLayoutHelp)
		}
		a, err := readVOCDetAnnotation(xmlPath, img, index, len(c.Classes) == 0, float32(minSize))
		if err != nil {
			return nil, err
		}
		if !c.TestMode && (min(a.width, a.height) < 32 || c.FilterEmptyGT && !a.known) {
			continue // mmdet 2.x's XMLDataset._filter_imgs(min_size=32)
		}
		src.paths = append(src.paths, img)
		src.labels = append(src.labels, -1)
		src.anns = append(src.anns, a.ann)
		src.sizes = append(src.sizes, [2]int{a.width, a.height})
	}
	if len(src.paths) == 0 {
		return nil, fmt.Errorf("%s: no image left: each has no object of the %d classes, or is smaller than 32 pixels (filter_empty_gt, test_mode)", annFile, len(classes))
	}
	return fileDataset(env, source{Pipeline: c.Pipeline, TestMode: c.TestMode, SkipCorrupt: c.SkipCorrupt}, src)
}

// vocDetSource is a list of images and their box annotations.
type vocDetSource struct {
	fileSource
	anns  []*DetAnnotation
	sizes [][2]int // width, height
}

func (v *vocDetSource) Sample(i int) (Sample, error) {
	s, err := v.fileSource.Sample(i)
	if err != nil {
		return s, err
	}
	s.Det = v.anns[i]
	return s, nil
}

func (v *vocDetSource) DetAnnotation(i int) (*DetAnnotation, error) {
	if i < 0 || i >= len(v.anns) {
		return nil, fmt.Errorf("sample %d out of range [0, %d)", i, len(v.anns))
	}
	return v.anns[i], nil
}

func (v *vocDetSource) ImageSize(i int) (int, int, error) {
	if i < 0 || i >= len(v.sizes) {
		return 0, 0, fmt.Errorf("sample %d out of range [0, %d)", i, len(v.sizes))
	}
	return v.sizes[i][0], v.sizes[i][1], nil
}

// vocXML is the part of a VOC annotation that mmdet 2.x reads.
type vocXML struct {
	Size *struct {
		Width  string `xml:"width"`
		Height string `xml:"height"`
	} `xml:"size"`
	Objects []struct {
		Name      string  `xml:"name"`
		Difficult *string `xml:"difficult"`
		BndBox    *struct {
			XMin string `xml:"xmin"`
			YMin string `xml:"ymin"`
			XMax string `xml:"xmax"`
			YMax string `xml:"ymax"`
		} `xml:"bndbox"`
	} `xml:"object"`
}

type vocDetAnnotation struct {
	ann           *DetAnnotation
	width, height int
	known         bool // an object of the classes, difficult or not: mmdet's filter keeps the image
}

// readVOCDetAnnotation is mmdet 2.x's XMLDataset.load_annotations and get_ann_info for one
// image: the size from <size> (or the image file's header), and each object of the
// classes: bbox = int(float(text)) of xmin, ymin, xmax, ymax, minus 1; difficult objects,
// and with minSize > 0 boxes whose xmax - xmin or ymax - ymin is below it, go to the
// ignored boxes. An object of another class is an error when strict, otherwise left out.
func readVOCDetAnnotation(path, img string, index map[string]int32, strict bool, minSize float32) (vocDetAnnotation, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return vocDetAnnotation{}, missing("annotation", path)
	}
	var x vocXML
	if err := xml.Unmarshal(data, &x); err != nil {
		return vocDetAnnotation{}, fmt.Errorf("%s: malformed annotation: %w", path, err)
	}
	out := vocDetAnnotation{ann: &DetAnnotation{}}
	if x.Size != nil {
		w, errW := strconv.Atoi(strings.TrimSpace(x.Size.Width))
		h, errH := strconv.Atoi(strings.TrimSpace(x.Size.Height))
		if errW != nil || errH != nil {
			return vocDetAnnotation{}, fmt.Errorf("%s: <size> is %q x %q, not integers", path, x.Size.Width, x.Size.Height)
		}
		out.width, out.height = w, h
	} else { // mmdet reads the image's size
		f, err := os.Open(img)
		if err != nil {
			return vocDetAnnotation{}, &LoadError{Path: img, Err: err}
		}
		cfg, _, err := image.DecodeConfig(f)
		f.Close()
		if err != nil {
			return vocDetAnnotation{}, fmt.Errorf("%s has no <size>, and its image %s: %w", path, img, err)
		}
		out.width, out.height = cfg.Width, cfg.Height
	}
	for k, o := range x.Objects {
		name := strings.TrimSpace(o.Name)
		label, ok := index[name]
		if !ok {
			if strict {
				return vocDetAnnotation{}, fmt.Errorf("%s: object %d is of the unknown class %q (not one of VOC's 20 classes; set the dataset's classes to read other names)", path, k, name)
			}
			continue
		}
		out.known = true
		difficult := 0
		if o.Difficult != nil {
			if difficult, err = strconv.Atoi(strings.TrimSpace(*o.Difficult)); err != nil {
				return vocDetAnnotation{}, fmt.Errorf("%s: object %d: <difficult> is %q, not an integer", path, k, *o.Difficult)
			}
		}
		if o.BndBox == nil {
			return vocDetAnnotation{}, fmt.Errorf("%s: object %d (%s) has no <bndbox>", path, k, name)
		}
		var box [4]float32
		for j, t := range []string{o.BndBox.XMin, o.BndBox.YMin, o.BndBox.XMax, o.BndBox.YMax} {
			v, err := strconv.ParseFloat(strings.TrimSpace(t), 64)
			if err != nil || math.IsNaN(v) || math.IsInf(v, 0) {
				return vocDetAnnotation{}, fmt.Errorf("%s: object %d (%s): <bndbox> coordinate %q is not a number", path, k, name, t)
			}
			box[j] = float32(math.Trunc(v)) // Python's int(float(text))
		}
		ignore := minSize > 0 && (box[2]-box[0] < minSize || box[3]-box[1] < minSize)
		for j := range box {
			box[j]-- // mmdet 2.x: np.array(bboxes) - 1
		}
		if difficult != 0 || ignore {
			out.ann.IgnoredBoxes = append(out.ann.IgnoredBoxes, box)
			out.ann.IgnoredLabels = append(out.ann.IgnoredLabels, label)
		} else {
			out.ann.Boxes = append(out.ann.Boxes, box)
			out.ann.Labels = append(out.ann.Labels, label)
		}
	}
	return out, nil
}

package datasets

import (
	"bufio"
	"encoding/xml"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/goselfsup/goselfsup/registry"
)

// fileSource is a list of image files under a root, with labels (and, for multi-label
// datasets, per-class targets).
type fileSource struct {
	paths   []string
	labels  []int
	targets [][]int8
	classes []string
}

func (f *fileSource) Len() int          { return len(f.paths) }
func (f *fileSource) Classes() []string { return f.classes }
func (f *fileSource) Sample(i int) (Sample, error) {
	if i < 0 || i >= len(f.paths) {
		return Sample{}, fmt.Errorf("sample %d out of range [0, %d)", i, len(f.paths))
	}
	s := Sample{Path: f.paths[i], Label: f.labels[i], Index: i}
	if f.targets != nil {
		s.Targets = f.targets[i]
	}
	return s, nil
}

// within joins rel to root and refuses paths that leave root.
func within(root, rel string) (string, error) {
	if filepath.IsAbs(rel) || !filepath.IsLocal(filepath.FromSlash(rel)) {
		return "", fmt.Errorf("%q leaves the data root %s", rel, root)
	}
	return filepath.Join(root, filepath.FromSlash(rel)), nil
}

// underRoot resolves a config path: absolute, or relative to data_root (mmengine's rule).
func underRoot(root, p string) string {
	if filepath.IsAbs(p) {
		return p
	}
	return filepath.Join(root, p)
}

// fileDataset checks that a pipeline can load files and wraps a file source.
func fileDataset(env *registry.Env, s source, src *fileSource) (*Dataset, error) {
	pipeline, err := BuildPipeline(env, s.Pipeline)
	if err != nil {
		return nil, err
	}
	if len(pipeline) == 0 {
		return nil, errors.New("the pipeline must start with LoadImageFromFile")
	}
	if _, ok := pipeline[0].(*loadImage); !ok {
		return nil, errors.New("the pipeline must start with LoadImageFromFile")
	}
	return &Dataset{Source: src, Pipeline: pipeline, SkipCorrupt: s.SkipCorrupt}, nil
}

// readList reads lines "relative/path [label]" of ann under imgRoot. withLabel requires
// the label.
func readList(ann, imgRoot string, withLabel bool) (*fileSource, error) {
	f, err := os.Open(ann)
	if err != nil {
		return nil, missing("annotation file", ann)
	}
	defer f.Close()
	src := &fileSource{}
	sc := bufio.NewScanner(f)
	maxLabel := -1
	for line := 1; sc.Scan(); line++ {
		fields := strings.Fields(sc.Text())
		if len(fields) == 0 {
			continue
		}
		path, err := within(imgRoot, fields[0])
		if err != nil {
			return nil, fmt.Errorf("%s:%d: %w", ann, line, err)
		}
		label := -1
		switch {
		case len(fields) > 1:
			if label, err = strconv.Atoi(fields[1]); err != nil || label < 0 {
				return nil, fmt.Errorf("%s:%d: bad label %q", ann, line, fields[1])
			}
		case withLabel:
			return nil, fmt.Errorf("%s:%d: no label (set with_label = false for a list of paths)", ann, line)
		}
		maxLabel = max(maxLabel, label)
		src.paths = append(src.paths, path)
		src.labels = append(src.labels, label)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("%s: %w", ann, err)
	}
	if len(src.paths) == 0 {
		return nil, fmt.Errorf("%s lists no images", ann)
	}
	for i := 0; i <= maxLabel; i++ {
		src.classes = append(src.classes, strconv.Itoa(i))
	}
	return src, nil
}

// Build reads mmselfsup's ImageNet layout: ann_file lines "relative/path.JPEG label" under
// data_root/data_prefix; with no ann_file, one folder per class.
func (c *ImageNetConfig) Build(env *registry.Env) (any, error) {
	imgRoot := underRoot(c.DataRoot, c.DataPrefix.ImgPath)
	var src *fileSource
	var err error
	if c.AnnFile == "" {
		src, err = listClassFolders(imgRoot)
	} else {
		src, err = readList(underRoot(c.DataRoot, c.AnnFile), imgRoot, false)
	}
	if err != nil {
		return nil, err
	}
	return fileDataset(env, c.source, src)
}

// Build reads a list of image paths, each optionally followed by a label.
func (c *ImageListConfig) Build(env *registry.Env) (any, error) {
	src, err := readList(underRoot(c.DataRoot, c.AnnFile), underRoot(c.DataRoot, c.DataPrefix.ImgPath), c.WithLabel)
	if err != nil {
		return nil, err
	}
	return fileDataset(env, c.source, src)
}

// Build reads a Places205 list file ("path label" per line).
func (c *Places205Config) Build(env *registry.Env) (any, error) {
	src, err := readList(underRoot(c.DataRoot, c.AnnFile), underRoot(c.DataRoot, c.DataPrefix.ImgPath), true)
	if err != nil {
		return nil, err
	}
	return fileDataset(env, c.source, src)
}

func listClassFolders(root string) (*fileSource, error) {
	entries, err := os.ReadDir(root)
	if err != nil {
		return nil, missing("image folder", root)
	}
	src := &fileSource{}
	for _, e := range entries {
		if !e.IsDir() {
			continue
		}
		label := len(src.classes)
		src.classes = append(src.classes, e.Name())
		files, err := os.ReadDir(filepath.Join(root, e.Name()))
		if err != nil {
			return nil, err
		}
		for _, f := range files {
			if !f.IsDir() && isImageFile(f.Name()) {
				src.paths = append(src.paths, filepath.Join(root, e.Name(), f.Name()))
				src.labels = append(src.labels, label)
			}
		}
	}
	if len(src.paths) == 0 {
		return nil, missing("class folders with images in", root)
	}
	return src, nil
}

// VOCClasses are PASCAL VOC's twenty classes, in label order.
var VOCClasses = []string{"aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair", "cow",
	"diningtable", "dog", "horse", "motorbike", "person", "pottedplant", "sheep", "sofa", "train", "tvmonitor"}

// Build reads PASCAL VOC classification in the VOCdevkit layout: image_set_path lists the
// image ids, data_prefix.img_path holds <id>.jpg and data_prefix.ann_path <id>.xml. Each
// sample's Targets give, per class, 1 (present), 0 (present only as difficult objects) or
// -1 (absent), mmselfsup's convention for the SVM benchmark.
func (c *VOCConfig) Build(env *registry.Env) (any, error) {
	ids, err := readIDs(underRoot(c.DataRoot, c.ImageSetPath))
	if err != nil {
		return nil, err
	}
	imgRoot := underRoot(c.DataRoot, c.DataPrefix.ImgPath)
	annRoot := underRoot(c.DataRoot, c.DataPrefix.AnnPath)
	src := &fileSource{classes: VOCClasses}
	index := map[string]int{}
	for i, name := range VOCClasses {
		index[name] = i
	}
	for _, id := range ids {
		img, err := within(imgRoot, id+".jpg")
		if err != nil {
			return nil, err
		}
		ann, err := within(annRoot, id+".xml")
		if err != nil {
			return nil, err
		}
		targets, err := readVOCAnnotation(ann, index)
		if err != nil {
			return nil, err
		}
		src.paths = append(src.paths, img)
		src.labels = append(src.labels, -1)
		src.targets = append(src.targets, targets)
	}
	return fileDataset(env, c.source, src)
}

func readIDs(path string) ([]string, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, missing("image set", path)
	}
	var ids []string
	for _, l := range strings.Split(string(data), "\n") {
		if f := strings.Fields(l); len(f) > 0 {
			ids = append(ids, f[0])
		}
	}
	if len(ids) == 0 {
		return nil, fmt.Errorf("%s lists no images", path)
	}
	return ids, nil
}

func readVOCAnnotation(path string, index map[string]int) ([]int8, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, missing("annotation", path)
	}
	var a struct {
		Objects []struct {
			Name      string `xml:"name"`
			Difficult int    `xml:"difficult"`
		} `xml:"object"`
	}
	if err := xml.Unmarshal(data, &a); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	targets := make([]int8, len(index))
	for i := range targets {
		targets[i] = -1
	}
	for _, o := range a.Objects {
		c, ok := index[strings.TrimSpace(o.Name)]
		if !ok {
			return nil, fmt.Errorf("%s: unknown class %q", path, o.Name)
		}
		if o.Difficult == 0 {
			targets[c] = 1
		} else if targets[c] == -1 {
			targets[c] = 0
		}
	}
	return targets, nil
}

func isImageFile(name string) bool {
	switch strings.ToLower(filepath.Ext(name)) {
	case ".jpg", ".jpeg", ".png":
		return true
	}
	return false
}

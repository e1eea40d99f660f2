package datasets

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/goselfsup/goselfsup/registry"
)

// DataPrefix is mmengine's data_prefix: a folder under data_root for the images (a string,
// or { img_path = "train/" }) and, for VOC, for the annotations.
type DataPrefix struct {
	ImgPath string `toml:"img_path" doc:"the folder of the images, under data_root"`
	AnnPath string `toml:"ann_path" doc:"the folder of the annotations, under data_root (VOC)"`
	// SegMapPath is mmseg's folder of the segmentation maps.
	SegMapPath string `toml:"seg_map_path" doc:"the folder of the segmentation maps, under data_root (BaseSegDataset, PascalVOCDataset)"`
}

// TOMLType says what a DataPrefix takes, for print_config --describe.
func (DataPrefix) TOMLType() string { return "string or table" }

func (p *DataPrefix) UnmarshalTOML(v any) error {
	switch x := v.(type) {
	case string:
		p.ImgPath = x
		return nil
	case map[string]any:
		for k, e := range x {
			s, ok := e.(string)
			if !ok {
				return fmt.Errorf("data_prefix.%s must be a string, got %v", k, e)
			}
			switch k {
			case "img_path":
				p.ImgPath = s
			case "ann_path":
				p.AnnPath = s
			case "seg_map_path":
				p.SegMapPath = s
			default:
				return fmt.Errorf("data_prefix has no key %q: it takes img_path, ann_path and seg_map_path", k)
			}
		}
		return nil
	}
	return fmt.Errorf("data_prefix must be a folder name or { img_path = \"...\" }, got %v", v)
}

// source holds the keys that every dataset of image files shares.
type source struct {
	DataRoot   string          `toml:"data_root" doc:"the dataset's folder; the other paths are under it unless absolute" required:"true"`
	DataPrefix DataPrefix      `toml:"data_prefix" doc:"the folder of the images under data_root, or { img_path = ..., ann_path = ... }"`
	Pipeline   []registry.Spec `toml:"pipeline" registry:"transforms" doc:"the transforms that make each sample a model input, in order; the first is LoadImageFromFile"`
	TestMode   bool            `toml:"test_mode" doc:"mmengine's flag for test sets; no effect on these datasets"`
	// SkipCorrupt replaces an image that cannot be read by another sample (chosen from the
	// sample's own random stream, so runs stay reproducible), and counts and logs it;
	// otherwise such an image stops the run with its path. goselfsup's own key.
	SkipCorrupt bool `toml:"skip_corrupt" doc:"replace an image that cannot be read by another sample, and count and log it; otherwise stop the run; goselfsup's own key"`
}

func (s *source) validate() error {
	if s.DataRoot == "" {
		return registry.FieldErrorf("data_root", "is required")
	}
	return nil
}

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
func fileDataset(env *registry.Env, s source, src Source) (*Dataset, error) {
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

func isImageFile(name string) bool {
	switch strings.ToLower(filepath.Ext(name)) {
	case ".jpg", ".jpeg", ".png":
		return true
	}
	return false
}

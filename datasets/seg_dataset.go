package datasets

import (
	"bufio"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/goselfsup/goselfsup/registry"
)

// SegMetainfo is mmseg's metainfo of a segmentation dataset: the class names, in index
// order, and the colour of each class (for drawing predictions).
type SegMetainfo struct {
	Classes []string `toml:"classes" doc:"the class names, in index order: mask value i is class i"`
	Palette [][]int  `toml:"palette" doc:"the [r, g, b] colour of each class; optional"`
}

// BaseSegDatasetConfig is mmseg 1.x's BaseSegDataset: images and their segmentation maps,
// data_prefix.img_path/<name><img_suffix> and data_prefix.seg_map_path/<name><seg_map_suffix>.
// The names come from ann_file (one a line, without suffix) or, without ann_file, from the
// images under img_path (recursively, sorted), as mmseg lists them.
type BaseSegDatasetConfig struct {
	source
	AnnFile         string      `toml:"ann_file" doc:"the list of sample names (no suffix), one a line, under data_root; empty: every image under data_prefix.img_path"`
	ImgDir          string      `toml:"img_dir" doc:"mmseg 0.x's name of data_prefix.img_path"`
	AnnDir          string      `toml:"ann_dir" doc:"mmseg 0.x's name of data_prefix.seg_map_path"`
	ImgSuffix       string      `toml:"img_suffix" doc:"the images' file suffix"`
	SegMapSuffix    string      `toml:"seg_map_suffix" doc:"the segmentation maps' file suffix (PNG: grey levels or palette indices are the classes)"`
	Metainfo        SegMetainfo `toml:"metainfo" doc:"{ classes = [...], palette = [[r, g, b], ...] }"`
	IgnoreIndex     int         `toml:"ignore_index" doc:"the map value of unlabelled pixels"`
	ReduceZeroLabel bool        `toml:"reduce_zero_label" doc:"map value 0 is unlabelled (becomes ignore_index) and the classes start at 1"`
}

func newBaseSegDatasetConfig() BaseSegDatasetConfig {
	return BaseSegDatasetConfig{ImgSuffix: ".jpg", SegMapSuffix: ".png", IgnoreIndex: 255}
}

func init() {
	registry.Add(registry.Datasets, "BaseSegDataset", "images and their segmentation maps (mmseg): a folder of images, a folder of PNG maps, optionally a list",
		func() *BaseSegDatasetConfig { c := newBaseSegDatasetConfig(); return &c })
}

func (c *BaseSegDatasetConfig) Validate() error {
	var errs []error
	if len(c.Metainfo.Classes) == 0 {
		errs = append(errs, registry.FieldErrorf("metainfo.classes", "is required: the class names, in index order"))
	}
	if len(c.Metainfo.Classes) > 256 {
		errs = append(errs, registry.FieldErrorf("metainfo.classes", "has %d classes: maps hold uint8 class indices, at most 256", len(c.Metainfo.Classes)))
	}
	if p := c.Metainfo.Palette; p != nil {
		if len(p) != len(c.Metainfo.Classes) {
			errs = append(errs, registry.FieldErrorf("metainfo.palette", "has %d colours for %d classes", len(p), len(c.Metainfo.Classes)))
		}
		for i, rgb := range p {
			if len(rgb) != 3 {
				errs = append(errs, registry.FieldErrorf("metainfo.palette", "colour %d has %d values, not 3 (r, g, b)", i, len(rgb)))
				break
			}
		}
	}
	if c.IgnoreIndex < 0 || c.IgnoreIndex > 255 {
		errs = append(errs, registry.FieldErrorf("ignore_index", "must be in [0, 255], got %d", c.IgnoreIndex))
	}
	if c.ImgDir != "" && c.DataPrefix.ImgPath != "" && c.ImgDir != c.DataPrefix.ImgPath {
		errs = append(errs, registry.FieldErrorf("img_dir", "and data_prefix.img_path differ: give one"))
	}
	if c.AnnDir != "" && c.DataPrefix.SegMapPath != "" && c.AnnDir != c.DataPrefix.SegMapPath {
		errs = append(errs, registry.FieldErrorf("ann_dir", "and data_prefix.seg_map_path differ: give one"))
	}
	if c.ImgSuffix == "" || c.SegMapSuffix == "" {
		errs = append(errs, registry.FieldErrorf("img_suffix", "and seg_map_suffix are required"))
	}
	return errors.Join(c.validate(), errors.Join(errs...))
}

// Build lists the samples and checks that each image and map file is there.
func (c *BaseSegDatasetConfig) Build(env *registry.Env) (any, error) {
	imgPath, segPath := c.DataPrefix.ImgPath, c.DataPrefix.SegMapPath
	if imgPath == "" {
		imgPath = c.ImgDir
	}
	if segPath == "" {
		segPath = c.AnnDir
	}
	imgRoot, segRoot := underRoot(c.DataRoot, imgPath), underRoot(c.DataRoot, segPath)
	if fi, err := os.Stat(imgRoot); err != nil || !fi.IsDir() {
		return nil, missing("image folder", imgRoot)
	}
	if fi, err := os.Stat(segRoot); err != nil || !fi.IsDir() {
		return nil, missing("segmentation map folder", segRoot)
	}
	src := &segSource{fileSource: fileSource{classes: c.Metainfo.Classes}, ignore: c.IgnoreIndex, reduce: c.ReduceZeroLabel}
	for _, rgb := range c.Metainfo.Palette {
		src.palette = append(src.palette, [3]uint8{uint8(rgb[0]), uint8(rgb[1]), uint8(rgb[2])})
	}
	add := func(where, name string) error {
		img, err := within(imgRoot, name+c.ImgSuffix)
		if err != nil {
			return fmt.Errorf("%s: %w", where, err)
		}
		seg, err := within(segRoot, name+c.SegMapSuffix)
		if err != nil {
			return fmt.Errorf("%s: %w", where, err)
		}
		for _, f := range [][2]string{{"image", img}, {"segmentation map", seg}} {
			if _, err := os.Stat(f[1]); err != nil {
				return fmt.Errorf("%s: %s %s not found; %s", where, f[0], f[1], DataLayoutHelp)
			}
		}
		src.paths = append(src.paths, img)
		src.labels = append(src.labels, -1)
		src.segs = append(src.segs, seg)
		return nil
	}
	if c.AnnFile != "" {
		ann := underRoot(c.DataRoot, c.AnnFile)
		f, err := os.Open(ann)
		if err != nil {
			return nil, missing("annotation file", ann)
		}
		defer f.Close()
		sc := bufio.NewScanner(f)
		for line := 1; sc.Scan(); line++ {
			name := strings.TrimSpace(sc.Text())
			if name == "" {
				continue
			}
			if err := add(fmt.Sprintf("%s:%d", ann, line), name); err != nil {
				return nil, err
			}
		}
		if err := sc.Err(); err != nil {
			return nil, fmt.Errorf("%s: %w", ann, err)
		}
		if len(src.paths) == 0 {
			return nil, fmt.Errorf("%s lists no images", ann)
		}
	} else {
		var names []string
		err := filepath.WalkDir(imgRoot, func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			if !d.IsDir() && strings.HasSuffix(d.Name(), c.ImgSuffix) {
				rel, _ := filepath.Rel(imgRoot, p)
				names = append(names, filepath.ToSlash(strings.TrimSuffix(rel, c.ImgSuffix)))
			}
			return nil
		})
		if err != nil {
			return nil, err
		}
		sort.Strings(names) // mmseg sorts by image path
		for _, n := range names {
			if err := add(filepath.Join(imgRoot, n+c.ImgSuffix), n); err != nil {
				return nil, err
			}
		}
		if len(src.paths) == 0 {
			return nil, fmt.Errorf("no *%s images under %s; %s", c.ImgSuffix, imgRoot, DataLayoutHelp)
		}
	}
	return fileDataset(env, c.source, src)
}

// segSource is a list of images and their segmentation maps.
type segSource struct {
	fileSource
	segs    []string
	palette [][3]uint8
	ignore  int
	reduce  bool
}

func (s *segSource) Sample(i int) (Sample, error) {
	smp, err := s.fileSource.Sample(i)
	if err != nil {
		return smp, err
	}
	smp.Seg = &SegMapInfo{Path: s.segs[i], Classes: len(s.classes), IgnoreIndex: s.ignore, ReduceZeroLabel: s.reduce}
	return smp, nil
}

// Palette is the colour of each class; nil when the config gives none.
func (s *segSource) Palette() [][3]uint8 { return s.palette }

// IgnoreIndex is the map value of unlabelled pixels.
func (s *segSource) IgnoreIndex() int { return s.ignore }

// SegSource is a source of segmentation samples (BaseSegDataset, PascalVOCDataset and
// their ConcatDataset): its Classes are the class names in index order.
type SegSource interface {
	Source
	Palette() [][3]uint8
	IgnoreIndex() int
}

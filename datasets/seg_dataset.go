package datasets

import (
	"bufio"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
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
	Classes         []string    `toml:"classes" doc:"a subset of metainfo.classes to train and evaluate on (mmseg 0.x's classes): the maps' other classes become ignore_index; empty: all of them"`
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

func (c *BaseSegDatasetConfig) Validate() error { return c.validate(nil) }

// validate checks the config of a dataset whose own classes are meta (mmseg's METAINFO, as
// PascalVOCDataset's) or, with meta nil, metainfo.classes (BaseSegDataset's).
func (c *BaseSegDatasetConfig) validate(meta *SegMetainfo) error {
	var errs []error
	if _, err := c.segClasses(meta); err != nil {
		errs = append(errs, err)
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
	return errors.Join(c.source.validate(), errors.Join(errs...))
}

// segClasses are a dataset's classes after its class subset: mmseg 1.x's
// BaseSegDataset.get_label_map and _update_palette.
type segClasses struct {
	classes  []string // the classes trained and evaluated, in index order
	palette  [][]int  // their colours; nil when the config gives none
	own      int      // the number of the dataset's own classes: the maps' values index them
	labelMap []uint8  // map value (after reduce_zero_label) -> class index; nil: none
}

// segClasses resolves the class subset. The dataset's own classes are meta's (mmseg's
// METAINFO: PascalVOCDataset's), where metainfo.classes or classes may name a subset, or,
// with meta nil, metainfo.classes, where classes may name a subset. As mmseg's
// get_label_map: the same list in the same order is no subset; otherwise own class i maps
// to its index in the subset, or to ignore_index when the subset leaves it out, and a name
// outside the own list is an error. The palette follows: one colour for each own class
// gives the subset's theirs (mmseg's _update_palette), one for each class of the subset is
// taken as it is.
func (c *BaseSegDatasetConfig) segClasses(meta *SegMetainfo) (segClasses, error) {
	own, sub, subKey := c.Metainfo.Classes, c.Classes, "classes"
	if meta != nil {
		own = meta.Classes
		if !slices.Equal(c.Metainfo.Classes, meta.Classes) {
			if len(c.Classes) > 0 {
				return segClasses{}, registry.FieldErrorf("classes", "and metainfo.classes both name a subset of the classes: give one")
			}
			sub, subKey = c.Metainfo.Classes, "metainfo.classes"
		}
	}
	if len(own) == 0 {
		return segClasses{}, registry.FieldErrorf("metainfo.classes", "is required: the class names, in index order")
	}
	if len(own) > 256 {
		return segClasses{}, registry.FieldErrorf("metainfo.classes", "has %d classes: maps hold uint8 class indices, at most 256", len(own))
	}
	out := segClasses{classes: own, own: len(own)}
	if len(sub) > 0 && !slices.Equal(sub, own) {
		var unknown []string
		seen := map[string]bool{}
		for _, name := range sub {
			if seen[name] {
				return segClasses{}, registry.FieldErrorf(subKey, "names %q twice", name)
			}
			seen[name] = true
			if !slices.Contains(own, name) {
				unknown = append(unknown, strconv.Quote(name))
			}
		}
		if len(unknown) > 0 {
			are, whose := "are", "of metainfo.classes"
			if len(unknown) == 1 {
				are = "is"
			}
			if meta != nil {
				whose = "of the dataset (mmseg's METAINFO)"
			}
			return segClasses{}, registry.FieldErrorf(subKey, "names %s, which %s not among the %d classes %s: a class subset names classes of that list (mmseg: 'new classes ... is not a subset of classes ... in METAINFO')",
				strings.Join(unknown, ", "), are, len(own), whose)
		}
		out.classes = sub
		out.labelMap = make([]uint8, 256)
		for v := range out.labelMap {
			out.labelMap[v] = uint8(v)
		}
		for i, name := range own {
			if j := slices.Index(sub, name); j >= 0 {
				out.labelMap[i] = uint8(j)
			} else {
				out.labelMap[i] = uint8(c.IgnoreIndex)
			}
		}
	}
	p := c.Metainfo.Palette
	if p == nil {
		return out, nil
	}
	for i, rgb := range p {
		if len(rgb) != 3 {
			return segClasses{}, registry.FieldErrorf("metainfo.palette", "colour %d has %d values, not 3 (r, g, b)", i, len(rgb))
		}
		for _, v := range rgb {
			if v < 0 || v > 255 {
				return segClasses{}, registry.FieldErrorf("metainfo.palette", "colour %d is %v: values are 0 to 255", i, rgb)
			}
		}
	}
	switch {
	case len(p) == len(own) && out.labelMap != nil: // the subset's colours, in its order
		for _, name := range out.classes {
			out.palette = append(out.palette, p[slices.Index(own, name)])
		}
	case len(p) == len(out.classes):
		out.palette = p
	case out.labelMap != nil:
		return segClasses{}, registry.FieldErrorf("metainfo.palette", "has %d colours: give one for each of the %d classes of the dataset, or of the %d of the subset", len(p), len(own), len(out.classes))
	default:
		return segClasses{}, registry.FieldErrorf("metainfo.palette", "has %d colours for %d classes", len(p), len(own))
	}
	return out, nil
}

// Build lists the samples and checks that each image and map file is there.
func (c *BaseSegDatasetConfig) Build(env *registry.Env) (any, error) { return c.build(env, nil) }

// build builds the dataset whose own classes are meta's, or with meta nil metainfo.classes.
func (c *BaseSegDatasetConfig) build(env *registry.Env, meta *SegMetainfo) (any, error) {
	cls, err := c.segClasses(meta)
	if err != nil {
		return nil, err
	}
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
	src := &segSource{fileSource: fileSource{classes: cls.classes}, ignore: c.IgnoreIndex, reduce: c.ReduceZeroLabel,
		own: cls.own, labelMap: cls.labelMap}
	for _, rgb := range cls.palette {
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
	// own is the number of the dataset's own classes, which the maps' values index;
	// labelMap maps them to the class subset's (nil: no subset).
	own      int
	labelMap []uint8
}

func (s *segSource) Sample(i int) (Sample, error) {
	smp, err := s.fileSource.Sample(i)
	if err != nil {
		return smp, err
	}
	smp.Seg = &SegMapInfo{Path: s.segs[i], Classes: s.own, IgnoreIndex: s.ignore, ReduceZeroLabel: s.reduce, LabelMap: s.labelMap}
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

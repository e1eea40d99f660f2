package datasets

import (
	"errors"
	"fmt"
	"math/rand/v2"

	"github.com/goselfsup/goselfsup/registry"
)

// LoadAnnotationsConfig is mmseg's LoadAnnotations: it reads the sample's segmentation map
// (gt_seg_map) from the file the dataset names, applies reduce_zero_label and then the
// dataset's class subset (label_map), in mmseg's order.
type LoadAnnotationsConfig struct {
	ReduceZeroLabel *bool  `toml:"reduce_zero_label" doc:"label 0 becomes 255 (ignored) and the others shift down by one; unset: the dataset's reduce_zero_label"`
	ImdecodeBackend string `toml:"imdecode_backend" doc:"mmseg's decoder of the maps (pillow); no effect: PNGs are decoded by Go's image/png, with the same indices"`
}

func init() {
	registry.Add(registry.Transforms, "LoadAnnotations", "read the sample's segmentation map (mmseg)",
		func() *LoadAnnotationsConfig { return &LoadAnnotationsConfig{ImdecodeBackend: "pillow"} })
}

func (c *LoadAnnotationsConfig) Build(*registry.Env) (any, error) {
	return &loadAnnotations{reduceZeroLabel: c.ReduceZeroLabel}, nil
}

// loadAnnotations reads Sample.Seg into Sample.Mask. Every problem of a map (unreadable,
// a size other than the image's, a value that is neither a class nor the ignore index) is
// a LoadError naming the file: the dataset's skip_corrupt replaces the sample, as it does
// for unreadable images; otherwise the run stops with the file's path.
type loadAnnotations struct{ reduceZeroLabel *bool }

func (t *loadAnnotations) Apply(s *Sample, _ *rand.Rand) error {
	if s.Seg == nil {
		return errors.New("LoadAnnotations: the dataset gives no segmentation maps (use BaseSegDataset or PascalVOCDataset)")
	}
	info := s.Seg
	m, err := readMask(info.Path)
	if err != nil {
		return &LoadError{Path: info.Path, Err: err}
	}
	// The map belongs to the image as decoded: in mmseg's test pipeline, LoadAnnotations
	// comes after Resize, and the map stays at the original size.
	h, w := s.OriHeight, s.OriWidth
	if h == 0 {
		h, w = s.Image.Height, s.Image.Width
	}
	if s.Image.Pix != nil && (m.Width != w || m.Height != h) {
		return &LoadError{Path: info.Path, Err: fmt.Errorf("the segmentation map is %dx%d but its image %s is %dx%d", m.Width, m.Height, s.Path, w, h)}
	}
	reduce := info.ReduceZeroLabel
	if t.reduceZeroLabel != nil {
		reduce = *t.reduceZeroLabel
	}
	if reduce { // mmseg: 0 -> 255, v -> v - 1, and 255 stays 255
		for i, v := range m.Pix {
			switch v {
			case 0, 255:
				m.Pix[i] = 255
			default:
				m.Pix[i] = v - 1
			}
		}
	}
	if info.Classes > 0 {
		for i, v := range m.Pix {
			if int(v) >= info.Classes && int(v) != info.IgnoreIndex {
				return &LoadError{Path: info.Path, Err: fmt.Errorf("the segmentation map has the value %d at (x %d, y %d): classes are 0 to %d, and %d is ignored",
					v, i%m.Width, i/m.Width, info.Classes-1, info.IgnoreIndex)}
			}
		}
	}
	if lm := info.LabelMap; lm != nil { // mmseg: the class subset's label_map, after reduce_zero_label
		for i, v := range m.Pix {
			m.Pix[i] = lm[v]
		}
	}
	s.Mask = m
	return nil
}

// Package datasets holds the data sources (ImageNet, image lists, Places205, VOC), the
// transforms, with mmselfsup's names and semantics, and the loader.
package datasets

import (
	"errors"
	"fmt"

	"github.com/goselfsup/goselfsup/registry"
)

// DataPrefix is mmengine's data_prefix: a folder under data_root for the images (a string,
// or { img_path = "train/" }) and, for VOC, for the annotations.
type DataPrefix struct {
	ImgPath string `toml:"img_path"`
	AnnPath string `toml:"ann_path"`
}

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
			default:
				return fmt.Errorf("data_prefix has no key %q: it takes img_path and ann_path", k)
			}
		}
		return nil
	}
	return fmt.Errorf("data_prefix must be a folder name or { img_path = \"...\" }, got %v", v)
}

// source holds the keys that every dataset shares.
type source struct {
	DataRoot   string          `toml:"data_root"`
	DataPrefix DataPrefix      `toml:"data_prefix"`
	Pipeline   []registry.Spec `toml:"pipeline" registry:"transforms"`
	TestMode   bool            `toml:"test_mode"`
	// SkipCorrupt replaces an image that cannot be read by another sample (chosen from the
	// sample's own random stream, so runs stay reproducible), and counts and logs it;
	// otherwise such an image stops the run with its path. goselfsup's own key.
	SkipCorrupt bool `toml:"skip_corrupt"`
}

func (s *source) validate() error {
	if s.DataRoot == "" {
		return registry.FieldErrorf("data_root", "is required")
	}
	return nil
}

// ImageNetConfig is mmcls's ImageNet: an annotation file of "relative/path.JPEG label" lines
// under data_root (meta/train.txt), or, with no ann_file, one folder per class.
type ImageNetConfig struct {
	source
	AnnFile string `toml:"ann_file"`
}

func (c *ImageNetConfig) Validate() error { return c.validate() }

// ImageListConfig is a list file of image paths, each optionally followed by a label.
type ImageListConfig struct {
	source
	AnnFile   string `toml:"ann_file"`
	WithLabel bool   `toml:"with_label"`
}

func (c *ImageListConfig) Validate() error {
	var errs []error
	if c.AnnFile == "" {
		errs = append(errs, registry.FieldErrorf("ann_file", "is required: the list of images"))
	}
	return errors.Join(c.validate(), errors.Join(errs...))
}

// Places205Config reads the Places205 list files ("path label" per line).
type Places205Config struct {
	source
	AnnFile string `toml:"ann_file"`
}

func (c *Places205Config) Validate() error {
	var errs []error
	if c.AnnFile == "" {
		errs = append(errs, registry.FieldErrorf("ann_file", "is required, such as trainvalsplit_places205/train_places205.csv"))
	}
	return errors.Join(c.validate(), errors.Join(errs...))
}

// VOCConfig is mmcls's VOC: PASCAL VOC classification in the VOCdevkit layout, with the
// difficult flags of the annotations.
type VOCConfig struct {
	source
	ImageSetPath string `toml:"image_set_path"`
}

func (c *VOCConfig) Validate() error {
	var errs []error
	if c.ImageSetPath == "" {
		errs = append(errs, registry.FieldErrorf("image_set_path", "is required, such as ImageSets/Main/trainval.txt"))
	}
	return errors.Join(c.validate(), errors.Join(errs...))
}

func init() {
	reg := func(typ, doc string, newCfg func() any) {
		registry.Register(registry.Component{Namespace: registry.Datasets, Type: typ, Doc: doc, New: newCfg})
	}
	reg("ImageNet", "ImageNet in mmselfsup's layout (meta/train.txt) or one folder per class",
		func() any { return &ImageNetConfig{} })
	reg("ImageList", "a list of image paths with optional labels",
		func() any { return &ImageListConfig{WithLabel: true} })
	reg("Places205", "Places205 list files",
		func() any { return &Places205Config{} })
	reg("VOC", "PASCAL VOC classification (VOCdevkit layout, difficult flags)",
		func() any {
			return &VOCConfig{source: source{DataPrefix: DataPrefix{ImgPath: "JPEGImages", AnnPath: "Annotations"}}}
		})
}

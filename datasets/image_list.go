package datasets

import (
	"errors"

	"github.com/goselfsup/goselfsup/registry"
)

// ImageListConfig is a list file of image paths, each optionally followed by a label.
type ImageListConfig struct {
	source
	AnnFile   string `toml:"ann_file" doc:"the list of image paths under data_prefix, one a line, each optionally followed by a label" required:"true"`
	WithLabel bool   `toml:"with_label" doc:"every line must have a label"`
}

func init() {
	registry.Add(registry.Datasets, "ImageList", "a list of image paths with optional labels",
		func() *ImageListConfig { return &ImageListConfig{WithLabel: true} })
}

func (c *ImageListConfig) Validate() error {
	var errs []error
	if c.AnnFile == "" {
		errs = append(errs, registry.FieldErrorf("ann_file", "is required: the list of images"))
	}
	return errors.Join(c.validate(), errors.Join(errs...))
}

// Build reads a list of image paths, each optionally followed by a label.
func (c *ImageListConfig) Build(env *registry.Env) (any, error) {
	src, err := readList(underRoot(c.DataRoot, c.AnnFile), underRoot(c.DataRoot, c.DataPrefix.ImgPath), c.WithLabel)
	if err != nil {
		return nil, err
	}
	return fileDataset(env, c.source, src)
}

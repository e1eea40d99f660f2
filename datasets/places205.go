package datasets

import (
	"errors"

	"github.com/goselfsup/goselfsup/registry"
)

// Places205Config reads the Places205 list files ("path label" per line).
type Places205Config struct {
	source
	AnnFile string `toml:"ann_file" doc:"the list of \"path label\" lines, such as trainvalsplit_places205/train_places205.csv" required:"true"`
}

func init() {
	registry.Add(registry.Datasets, "Places205", "Places205 list files",
		func() *Places205Config { return &Places205Config{} })
}

func (c *Places205Config) Validate() error {
	var errs []error
	if c.AnnFile == "" {
		errs = append(errs, registry.FieldErrorf("ann_file", "is required, such as trainvalsplit_places205/train_places205.csv"))
	}
	return errors.Join(c.validate(), errors.Join(errs...))
}

// Build reads a Places205 list file ("path label" per line).
func (c *Places205Config) Build(env *registry.Env) (any, error) {
	src, err := readList(underRoot(c.DataRoot, c.AnnFile), underRoot(c.DataRoot, c.DataPrefix.ImgPath), true)
	if err != nil {
		return nil, err
	}
	return fileDataset(env, c.source, src)
}

package datasets

import (
	"os"
	"path/filepath"

	"github.com/goselfsup/goselfsup/registry"
)

// ImageNetConfig is mmcls's ImageNet: an annotation file of "relative/path.JPEG label" lines
// under data_root (meta/train.txt), or, with no ann_file, one folder per class.
type ImageNetConfig struct {
	source
	AnnFile string `toml:"ann_file" doc:"the list of \"relative/path.JPEG label\" lines, such as meta/train.txt; none: one folder of images per class"`
}

func init() {
	registry.Add(registry.Datasets, "ImageNet", "ImageNet in mmselfsup's layout (meta/train.txt) or one folder per class",
		func() *ImageNetConfig { return &ImageNetConfig{} })
}

func (c *ImageNetConfig) Validate() error { return c.validate() }

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

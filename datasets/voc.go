package datasets

import (
	"encoding/xml"
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/goselfsup/goselfsup/registry"
)

// VOCConfig is mmcls's VOC: PASCAL VOC classification in the VOCdevkit layout, with the
// difficult flags of the annotations.
type VOCConfig struct {
	source
	ImageSetPath string `toml:"image_set_path" doc:"the list of image ids, such as ImageSets/Main/trainval.txt" required:"true"`
}

func init() {
	registry.Add(registry.Datasets, "VOC", "PASCAL VOC classification (VOCdevkit layout, difficult flags)",
		func() *VOCConfig {
			return &VOCConfig{source: source{DataPrefix: DataPrefix{ImgPath: "JPEGImages", AnnPath: "Annotations"}}}
		})
}

func (c *VOCConfig) Validate() error {
	var errs []error
	if c.ImageSetPath == "" {
		errs = append(errs, registry.FieldErrorf("image_set_path", "is required, such as ImageSets/Main/trainval.txt"))
	}
	return errors.Join(c.validate(), errors.Join(errs...))
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

package datasets

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"

	"github.com/goselfsup/goselfsup/registry"
)

// CIFAR10Config reads CIFAR-10 from the official binary batches (data_batch_1..5.bin and
// test_batch.bin, in data_root or data_root/cifar-10-batches-bin) or from folders of images
// (data_root/{train,test}/<class>/*.jpg or .png).
type CIFAR10Config struct {
	DataRoot   string          `toml:"data_root" doc:"the folder of the binary batches (or of cifar-10-batches-bin), or of train/ and test/ folders of images by class" required:"true"`
	TestMode   bool            `toml:"test_mode" doc:"read the test split instead of the training split"`
	NumSamples int             `toml:"num_samples" doc:"read the first n images only (balanced across classes for folders); 0: all"`
	Pipeline   []registry.Spec `toml:"pipeline" registry:"transforms" doc:"the transforms that make each sample a model input, in order"`
}

func init() {
	registry.Add(registry.Datasets, "CIFAR10", "CIFAR-10 from the binary batches or class folders of images",
		func() *CIFAR10Config { return &CIFAR10Config{} })
}

// CIFAR10Classes are the labels of CIFAR-10, in the official order (also alphabetical).
var CIFAR10Classes = []string{"airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"}

func (c *CIFAR10Config) Validate() error {
	if c.DataRoot == "" {
		return registry.FieldErrorf("data_root", "is required")
	}
	return nil
}

func (c *CIFAR10Config) Build(env *registry.Env) (any, error) {
	pipeline, err := BuildPipeline(env, c.Pipeline)
	if err != nil {
		return nil, err
	}
	var src *memorySource
	for _, dir := range []string{c.DataRoot, filepath.Join(c.DataRoot, "cifar-10-batches-bin")} {
		if _, err := os.Stat(filepath.Join(dir, "test_batch.bin")); err == nil {
			src, err = readCIFARBinary(dir, c.TestMode)
			if err != nil {
				return nil, err
			}
			break
		}
	}
	if src == nil {
		split := "train"
		if c.TestMode {
			split = "test"
		}
		dir := filepath.Join(c.DataRoot, split)
		if _, err := os.Stat(dir); err != nil {
			return nil, missing("CIFAR-10 (binary batches or a "+split+"/<class>/ folder)", c.DataRoot)
		}
		if src, err = readImageFolders(dir, CIFAR10Classes, c.NumSamples); err != nil {
			return nil, err
		}
	}
	src.truncate(c.NumSamples)
	return &Dataset{Source: src, Pipeline: pipeline}, nil
}

func readCIFARBinary(dir string, test bool) (*memorySource, error) {
	files := []string{"data_batch_1.bin", "data_batch_2.bin", "data_batch_3.bin", "data_batch_4.bin", "data_batch_5.bin"}
	if test {
		files = []string{"test_batch.bin"}
	}
	src := &memorySource{classes: CIFAR10Classes}
	const record = 1 + 3072
	for _, f := range files {
		path := filepath.Join(dir, f)
		data, err := os.ReadFile(path)
		if err != nil {
			return nil, missing("CIFAR-10 batch", path)
		}
		if len(data)%record != 0 {
			return nil, fmt.Errorf("%s: %d bytes is not a whole number of %d-byte records", path, len(data), record)
		}
		for r := 0; r < len(data); r += record {
			label := int(data[r])
			if label >= len(CIFAR10Classes) {
				return nil, fmt.Errorf("%s: label %d at record %d", path, label, r/record)
			}
			img := NewImage(32, 32)
			chw := data[r+1 : r+record]
			for p := 0; p < 1024; p++ {
				img.Pix[3*p], img.Pix[3*p+1], img.Pix[3*p+2] = chw[p], chw[1024+p], chw[2048+p]
			}
			src.images = append(src.images, img)
			src.labels = append(src.labels, label)
		}
	}
	return src, nil
}

// readImageFolders decodes dir/<class>/* for the given classes, in class then file-name
// order. With limit > 0, it decodes only what the first limit samples of an interleaved
// order need: the files are taken round-robin across classes, so that a prefix is balanced.
func readImageFolders(dir string, classes []string, limit int) (*memorySource, error) {
	perClass := make([][]string, len(classes))
	for i, c := range classes {
		entries, err := os.ReadDir(filepath.Join(dir, c))
		if err != nil {
			return nil, missing("class folder", filepath.Join(dir, c))
		}
		for _, e := range entries {
			if !e.IsDir() && isImageFile(e.Name()) {
				perClass[i] = append(perClass[i], e.Name())
			}
		}
		sort.Strings(perClass[i])
	}
	src := &memorySource{classes: classes}
	for k := 0; ; k++ {
		added := false
		for i, files := range perClass {
			if k >= len(files) {
				continue
			}
			added = true
			img, err := DecodeFile(filepath.Join(dir, classes[i], files[k]))
			if err != nil {
				return nil, err
			}
			src.images = append(src.images, img)
			src.labels = append(src.labels, i)
			if limit > 0 && len(src.images) == limit {
				return src, nil
			}
		}
		if !added {
			return src, nil
		}
	}
}

package datasets

import (
	"bytes"
	"compress/gzip"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/goselfsup/goselfsup/registry"
)

// DataLayoutHelp points at the README section that says how to lay out datasets.
const DataLayoutHelp = "see \"Datasets\" in README.md for the layouts goselfsup reads"

func missing(what, path string) error {
	return fmt.Errorf("%s %s not found; %s", what, path, DataLayoutHelp)
}

// memorySource holds decoded images.
type memorySource struct {
	images  []Image
	labels  []int
	classes []string
}

func (m *memorySource) Len() int          { return len(m.images) }
func (m *memorySource) Classes() []string { return m.classes }
func (m *memorySource) Sample(i int) (Sample, error) {
	if i < 0 || i >= len(m.images) {
		return Sample{}, fmt.Errorf("sample %d out of range [0, %d)", i, len(m.images))
	}
	return Sample{Image: m.images[i].Clone(), Label: m.labels[i], Index: i}, nil
}

func (m *memorySource) truncate(n int) {
	if n > 0 && n < len(m.images) {
		m.images, m.labels = m.images[:n], m.labels[:n]
	}
}

// FashionMNISTConfig reads Fashion-MNIST's IDX files (gzip or not), as Debian's
// dataset-fashion-mnist installs them; the 28x28 gray images become RGB.
type FashionMNISTConfig struct {
	DataRoot   string          `toml:"data_root"`
	TestMode   bool            `toml:"test_mode"`
	NumSamples int             `toml:"num_samples"` // the first n; 0 for all
	Pipeline   []registry.Spec `toml:"pipeline" registry:"transforms"`
}

// FashionMNISTClasses are the labels of Fashion-MNIST.
var FashionMNISTClasses = []string{"t-shirt", "trouser", "pullover", "dress", "coat", "sandal", "shirt", "sneaker", "bag", "ankle boot"}

func (c *FashionMNISTConfig) Build(env *registry.Env) (any, error) {
	pipeline, err := BuildPipeline(env, c.Pipeline)
	if err != nil {
		return nil, err
	}
	prefix := "train"
	if c.TestMode {
		prefix = "t10k"
	}
	images, err := readIDX(c.DataRoot, prefix+"-images-idx3-ubyte", 0x803)
	if err != nil {
		return nil, err
	}
	labels, err := readIDX(c.DataRoot, prefix+"-labels-idx1-ubyte", 0x801)
	if err != nil {
		return nil, err
	}
	n := len(labels.data)
	if len(images.dims) != 3 || images.dims[0] != n {
		return nil, fmt.Errorf("%s: %v images for %d labels", c.DataRoot, images.dims, n)
	}
	h, w := images.dims[1], images.dims[2]
	src := &memorySource{classes: FashionMNISTClasses}
	for i := 0; i < n; i++ {
		img := NewImage(w, h)
		for j, v := range images.data[i*h*w : (i+1)*h*w] {
			img.Pix[3*j], img.Pix[3*j+1], img.Pix[3*j+2] = v, v, v
		}
		src.images = append(src.images, img)
		src.labels = append(src.labels, int(labels.data[i]))
	}
	src.truncate(c.NumSamples)
	return &Dataset{Source: src, Pipeline: pipeline}, nil
}

type idx struct {
	dims []int
	data []byte
}

// readIDX reads name or name.gz under root: a big-endian magic, one uint32 per dimension,
// then the bytes.
func readIDX(root, name string, magic uint32) (*idx, error) {
	path := filepath.Join(root, name)
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		path += ".gz"
		data, err = os.ReadFile(path)
	}
	if errors.Is(err, fs.ErrNotExist) {
		return nil, missing("Fashion-MNIST file", filepath.Join(root, name)+"[.gz]")
	}
	if err != nil {
		return nil, err
	}
	if strings.HasSuffix(path, ".gz") {
		zr, err := gzip.NewReader(bytes.NewReader(data))
		if err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		if data, err = io.ReadAll(zr); err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
	}
	if len(data) < 8 || binary.BigEndian.Uint32(data) != magic {
		return nil, fmt.Errorf("%s: not an IDX file with magic %#x", path, magic)
	}
	rank := int(magic & 0xff)
	if len(data) < 4+4*rank {
		return nil, fmt.Errorf("%s: truncated header", path)
	}
	out := &idx{}
	size := 1
	for i := 0; i < rank; i++ {
		d := int(binary.BigEndian.Uint32(data[4+4*i:]))
		out.dims = append(out.dims, d)
		size *= d
	}
	out.data = data[4+4*rank:]
	if len(out.data) != size {
		return nil, fmt.Errorf("%s: %d bytes of data for dimensions %v", path, len(out.data), out.dims)
	}
	return out, nil
}

// CIFAR10Config reads CIFAR-10 from the official binary batches (data_batch_1..5.bin and
// test_batch.bin, in data_root or data_root/cifar-10-batches-bin) or from folders of images
// (data_root/{train,test}/<class>/*.jpg or .png).
type CIFAR10Config struct {
	DataRoot   string          `toml:"data_root"`
	TestMode   bool            `toml:"test_mode"`
	NumSamples int             `toml:"num_samples"` // the first n (of a shuffle-free order); 0 for all
	Pipeline   []registry.Spec `toml:"pipeline" registry:"transforms"`
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

func init() {
	reg := func(typ, doc string, newCfg func() any) {
		registry.Register(registry.Component{Namespace: registry.Datasets, Type: typ, Doc: doc, New: newCfg})
	}
	reg("FashionMNIST", "Fashion-MNIST from its IDX files (Debian's dataset-fashion-mnist)",
		func() any { return &FashionMNISTConfig{DataRoot: "/usr/share/datasets/fashion-mnist"} })
	reg("CIFAR10", "CIFAR-10 from the binary batches or class folders of images",
		func() any { return &CIFAR10Config{} })
}

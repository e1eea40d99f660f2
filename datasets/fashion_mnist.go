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
	"strings"

	"github.com/goselfsup/goselfsup/registry"
)

// FashionMNISTConfig reads Fashion-MNIST's IDX files (gzip or not), as Debian's
// dataset-fashion-mnist installs them; the 28x28 gray images become RGB.
type FashionMNISTConfig struct {
	DataRoot   string          `toml:"data_root" doc:"the folder of the IDX files (train-images-idx3-ubyte[.gz] ...)"`
	TestMode   bool            `toml:"test_mode" doc:"read the test split (t10k-*) instead of the training split"`
	NumSamples int             `toml:"num_samples" doc:"read the first n images only; 0: all"`
	Pipeline   []registry.Spec `toml:"pipeline" registry:"transforms" doc:"the transforms that make each sample a model input, in order"`
}

func init() {
	registry.Add(registry.Datasets, "FashionMNIST", "Fashion-MNIST from its IDX files (Debian's dataset-fashion-mnist)",
		func() *FashionMNISTConfig { return &FashionMNISTConfig{DataRoot: "/usr/share/datasets/fashion-mnist"} })
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

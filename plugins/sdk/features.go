package sdk

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"

	"github.com/goselfsup/goselfsup/internal/npy"
)

// Features are one split's features as tools/extract writes them: N rows of Dim float32
// values, row-major, and each row's label.
type Features struct {
	N, Dim int
	Data   []float32
	Labels []int
}

// Row returns row i.
func (f *Features) Row(i int) []float32 { return f.Data[i*f.Dim : (i+1)*f.Dim] }

// ReadFeatures reads <dir>/<split>_<name>.npy and <dir>/<split>_labels.npy: split is
// "train" or "val", name a feature such as "backbone".
func ReadFeatures(dir, split, name string) (*Features, error) {
	open := func(file string) (*os.File, *bufio.Reader, error) {
		f, err := os.Open(filepath.Join(dir, file))
		if err != nil {
			return nil, nil, err
		}
		return f, bufio.NewReaderSize(f, 1<<20), nil
	}
	f, r, err := open(split + "_" + name + ".npy")
	if err != nil {
		return nil, err
	}
	defer f.Close()
	shape, data, err := npy.Read[float32](r)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", f.Name(), err)
	}
	if len(shape) != 2 {
		return nil, fmt.Errorf("%s: shape %v is not [samples, dimensions]", f.Name(), shape)
	}
	lf, lr, err := open(split + "_labels.npy")
	if err != nil {
		return nil, err
	}
	defer lf.Close()
	_, labels, err := npy.Read[int64](lr)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", lf.Name(), err)
	}
	if len(labels) != shape[0] {
		return nil, fmt.Errorf("%s: %d labels for %d feature rows", lf.Name(), len(labels), shape[0])
	}
	out := &Features{N: shape[0], Dim: shape[1], Data: data, Labels: make([]int, len(labels))}
	for i, l := range labels {
		out.Labels[i] = int(l)
	}
	return out, nil
}

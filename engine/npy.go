package engine

import (
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/gomlx/gomlx/pkg/core/dtypes"
	"github.com/gomlx/gomlx/pkg/core/shapes"
	"github.com/gomlx/gomlx/pkg/core/tensors"
	"github.com/goselfsup/goselfsup/internal/npy"
)

// Tensors as .npy files (internal/npy), which NumPy and PyTorch read directly.

var npyDescr = map[dtypes.DType]string{
	dtypes.Float32: "<f4", dtypes.Float64: "<f8", dtypes.Int32: "<i4", dtypes.Int64: "<i8",
	dtypes.Uint8: "|u1", dtypes.Uint32: "<u4", dtypes.Uint64: "<u8", dtypes.Bool: "|b1",
}

// WriteNPY writes t as a .npy file.
func WriteNPY(w io.Writer, t *tensors.Tensor) error {
	descr, ok := npyDescr[t.DType()]
	if !ok {
		return fmt.Errorf("npy: dtype %s is not supported", t.DType())
	}
	if err := npy.WriteHeader(w, npy.Header{Descr: descr, Shape: t.Shape().Dimensions}); err != nil {
		return err
	}
	var werr error
	err := t.ConstBytes(func(data []byte) { _, werr = w.Write(data) })
	if err != nil {
		return err
	}
	return werr
}

// ReadNPY reads a .npy file in C order.
func ReadNPY(r io.Reader) (*tensors.Tensor, error) {
	h, err := npy.ReadHeader(r)
	if err != nil {
		return nil, err
	}
	var dtype dtypes.DType
	for dt, d := range npyDescr {
		if d == h.Descr {
			dtype = dt
		}
	}
	if dtype == dtypes.InvalidDType {
		return nil, fmt.Errorf("npy: dtype %s is not supported", h.Descr)
	}
	t := tensors.FromShape(shapes.Make(dtype, h.Shape...))
	var rerr error
	if err := t.MutableBytes(func(data []byte) { _, rerr = io.ReadFull(r, data) }); err != nil {
		return nil, err
	}
	if rerr != nil {
		return nil, fmt.Errorf("npy: data: %w", rerr)
	}
	return t, nil
}

// SaveNPY writes t to the .npy file path, making its folder.
func SaveNPY(path string, t *tensors.Tensor) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if err := WriteNPY(f, t); err != nil {
		f.Close()
		return fmt.Errorf("%s: %w", path, err)
	}
	return f.Close()
}

// LoadNPY reads the .npy file path.
func LoadNPY(path string) (*tensors.Tensor, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	t, err := ReadNPY(f)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return t, nil
}

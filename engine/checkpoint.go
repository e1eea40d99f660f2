package engine

import (
	"archive/zip"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/gomlx/gomlx/pkg/core/dtypes"
	"github.com/gomlx/gomlx/pkg/core/tensors"
	"github.com/goselfsup/goselfsup/internal/atomicfile"
)

// A checkpoint is one zip file (uncompressed): meta.json, and one NumPy .npy file per
// variable under tensors/, named by the variable's PyTorch-style name
// ("tensors/backbone.layer1.0.conv1.weight.npy"). NumPy reads it as np.load(path) of an
// .npz. Convolution kernels are stored as goselfsup keeps them, [kh, kw, in, out]; the
// layouts entry of meta.json says so for each tensor that differs from PyTorch's.

// CheckpointFormat identifies goselfsup checkpoints.
const CheckpointFormat = "goselfsup-checkpoint"

// CheckpointMeta is the run state that a checkpoint carries besides its tensors.
type CheckpointMeta struct {
	Format  string `json:"format"`
	Version int    `json:"version"`
	// Epoch and Iter are the epochs and iterations completed.
	Epoch int   `json:"epoch"`
	Iter  int   `json:"iter"`
	Seed  int64 `json:"seed"`
	// Devices and BatchSize are the devices the run trained on and each one's batch (0 in
	// checkpoints written before runs had several devices: one device).
	Devices   int `json:"devices,omitempty"`
	BatchSize int `json:"batch_size,omitempty"`
	// Config is the merged config of the run, as TOML.
	Config string `json:"config"`
	// Metrics are results so far, such as the random-init kNN baseline.
	Metrics map[string]float64 `json:"metrics,omitempty"`
	// Layouts names the axis order of tensors stored differently from PyTorch ("HWIO").
	Layouts map[string]string `json:"layouts,omitempty"`
}

// Checkpoint is a checkpoint in memory.
type Checkpoint struct {
	Meta    CheckpointMeta
	Tensors map[string]*tensors.Tensor
}

// SaveCheckpoint writes c to path atomically: a temporary file in the same folder, synced,
// then renamed over path, so that a crash leaves either the old file or the new one.
func SaveCheckpoint(path string, c *Checkpoint) error {
	c.Meta.Format, c.Meta.Version = CheckpointFormat, 1
	meta, err := json.MarshalIndent(c.Meta, "", "  ")
	if err != nil {
		return err
	}
	err = atomicfile.Write(path, func(f io.Writer) error {
		zw := zip.NewWriter(f)
		if err := writeEntry(zw, "meta.json", func(w io.Writer) error { _, err := w.Write(meta); return err }); err != nil {
			return err
		}
		for _, n := range slices.Sorted(maps.Keys(c.Tensors)) {
			t := c.Tensors[n]
			if err := writeEntry(zw, "tensors/"+n+".npy", func(w io.Writer) error { return WriteNPY(w, t) }); err != nil {
				return fmt.Errorf("saving %s: %w", n, err)
			}
		}
		return zw.Close()
	})
	if err != nil {
		return fmt.Errorf("saving checkpoint: %w", err)
	}
	return nil
}

func writeEntry(zw *zip.Writer, name string, write func(io.Writer) error) error {
	w, err := zw.CreateHeader(&zip.FileHeader{Name: name, Method: zip.Store})
	if err != nil {
		return err
	}
	return write(w)
}

// LoadCheckpoint reads a checkpoint.
func LoadCheckpoint(path string) (*Checkpoint, error) {
	zr, err := zip.OpenReader(path)
	if err != nil {
		return nil, fmt.Errorf("reading checkpoint %s: %w", path, err)
	}
	defer zr.Close()
	c := &Checkpoint{Tensors: map[string]*tensors.Tensor{}}
	sawMeta := false
	for _, f := range zr.File {
		rc, err := f.Open()
		if err != nil {
			return nil, fmt.Errorf("reading checkpoint %s: %w", path, err)
		}
		switch {
		case f.Name == "meta.json":
			err = json.NewDecoder(rc).Decode(&c.Meta)
			sawMeta = true
		case strings.HasPrefix(f.Name, "tensors/") && strings.HasSuffix(f.Name, ".npy"):
			var t *tensors.Tensor
			t, err = ReadNPY(rc)
			c.Tensors[strings.TrimSuffix(strings.TrimPrefix(f.Name, "tensors/"), ".npy")] = t
		}
		rc.Close()
		if err != nil {
			return nil, fmt.Errorf("reading checkpoint %s: %s: %w", path, f.Name, err)
		}
	}
	if !sawMeta || c.Meta.Format != CheckpointFormat {
		return nil, fmt.Errorf("%s is not a goselfsup checkpoint", path)
	}
	return c, nil
}

// latestName is the file in a work_dir that names its newest checkpoint (as mmengine's
// last_checkpoint).
const latestName = "last_checkpoint"

// LatestCheckpoint returns the newest checkpoint of a work_dir.
func LatestCheckpoint(workDir string) (string, error) {
	data, err := os.ReadFile(filepath.Join(workDir, latestName))
	if errors.Is(err, os.ErrNotExist) {
		return "", fmt.Errorf("no checkpoint to resume from in %s", workDir)
	}
	if err != nil {
		return "", err
	}
	p := strings.TrimSpace(string(data))
	if !filepath.IsAbs(p) {
		p = filepath.Join(workDir, p)
	}
	return p, nil
}

// ToTorch returns a tensor in PyTorch's layout: a tensor stored as HWIO
// ([kh, kw, in, out], goselfsup's convolution kernels) becomes OIHW; others are returned
// as they are.
func ToTorch(t *tensors.Tensor, layout string) (*tensors.Tensor, error) {
	if layout != "HWIO" {
		return t, nil
	}
	d := t.Shape().Dimensions
	if len(d) != 4 {
		return nil, fmt.Errorf("an HWIO tensor of shape %v", d)
	}
	if t.DType() == dtypes.Float64 {
		src, err := tensors.CopyFlatData[float64](t)
		if err != nil {
			return nil, err
		}
		return tensors.FromFlatDataAndDimensions(hwioToOIHW(src, d), d[3], d[2], d[0], d[1]), nil
	}
	src, err := tensors.CopyFlatData[float32](t)
	if err != nil {
		return nil, err
	}
	return tensors.FromFlatDataAndDimensions(hwioToOIHW(src, d), d[3], d[2], d[0], d[1]), nil
}

func hwioToOIHW[T float32 | float64](src []T, d []int) []T {
	kh, kw, in, out := d[0], d[1], d[2], d[3]
	dst := make([]T, len(src))
	for h := 0; h < kh; h++ {
		for w := 0; w < kw; w++ {
			for i := 0; i < in; i++ {
				for o := 0; o < out; o++ {
					dst[((o*in+i)*kh+h)*kw+w] = src[((h*kw+w)*in+i)*out+o]
				}
			}
		}
	}
	return dst
}

package evaluators

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"path/filepath"
	"slices"

	"github.com/goselfsup/goselfsup/internal/atomicfile"
	"github.com/goselfsup/goselfsup/internal/npy"
)

// FeatureSet holds the features of a dataset's samples by name, in sample order, with the
// samples' labels: Labels for single-label data (-1 where unlabelled), Targets ([N,
// Classes], 1 present, 0 difficult only, -1 absent) for multi-label data such as VOC.
type FeatureSet struct {
	Features map[string]Features
	Labels   []int
	Targets  []int8
	Classes  int
}

// WriteNPY writes the set as .npy files in dir: <split>_<name>.npy (float32 [N, dim]) for
// each feature, <split>_labels.npy (int64 [N]) and, for multi-label data,
// <split>_targets.npy (int8 [N, classes]). It returns the paths written.
func (s *FeatureSet) WriteNPY(dir, split string) ([]string, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	var paths []string
	write := func(name string, w func(f io.Writer) error) error {
		path := filepath.Join(dir, split+"_"+name+".npy")
		if err := atomicfile.Write(path, w); err != nil {
			return fmt.Errorf("writing %s: %w", path, err)
		}
		paths = append(paths, path)
		return nil
	}
	for _, n := range slices.Sorted(maps.Keys(s.Features)) {
		f := s.Features[n]
		if err := write(n, func(w io.Writer) error { return npy.Write(w, []int{f.N, f.Dim}, f.Data) }); err != nil {
			return nil, err
		}
	}
	labels := make([]int64, len(s.Labels))
	for i, l := range s.Labels {
		labels[i] = int64(l)
	}
	if err := write("labels", func(w io.Writer) error { return npy.Write(w, []int{len(labels)}, labels) }); err != nil {
		return nil, err
	}
	if s.Targets != nil {
		err := write("targets", func(w io.Writer) error {
			return npy.Write(w, []int{len(s.Targets) / s.Classes, s.Classes}, s.Targets)
		})
		if err != nil {
			return nil, err
		}
	}
	return paths, nil
}

// ReadFeatureSet reads the features names of split from dir, as WriteNPY wrote them.
func ReadFeatureSet(dir, split string, names []string) (*FeatureSet, error) {
	s := &FeatureSet{Features: map[string]Features{}}
	read := func(name string, r func(f io.Reader) error) error {
		path := filepath.Join(dir, split+"_"+name+".npy")
		f, err := os.Open(path)
		if err != nil {
			return err
		}
		defer f.Close()
		if err := r(bufio.NewReaderSize(f, 1<<20)); err != nil {
			return fmt.Errorf("%s: %w", path, err)
		}
		return nil
	}
	for _, n := range names {
		err := read(n, func(r io.Reader) error {
			shape, data, err := npy.Read[float32](r)
			if err != nil {
				return err
			}
			if len(shape) != 2 {
				return fmt.Errorf("shape %v is not [samples, dimensions]", shape)
			}
			s.Features[n] = Features{N: shape[0], Dim: shape[1], Data: data}
			return nil
		})
		if err != nil {
			return nil, err
		}
	}
	err := read("labels", func(r io.Reader) error {
		_, labels, err := npy.Read[int64](r)
		for _, l := range labels {
			s.Labels = append(s.Labels, int(l))
		}
		return err
	})
	if err != nil {
		return nil, err
	}
	err = read("targets", func(r io.Reader) error {
		shape, t, err := npy.Read[int8](r)
		if err == nil && len(shape) == 2 {
			s.Targets, s.Classes = t, shape[1]
		}
		return err
	})
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, err
	}
	for n, f := range s.Features {
		if f.N != len(s.Labels) {
			return nil, fmt.Errorf("%s: %d %s features for %d labels", dir, f.N, n, len(s.Labels))
		}
	}
	return s, nil
}

// PerClassTargets returns the set's per-class targets: its own (VOC), or one-vs-rest targets
// of its labels; single reports the latter.
func (s *FeatureSet) PerClassTargets() (targets [][]int8, single bool) {
	if s.Targets != nil {
		out := make([][]int8, len(s.Targets)/s.Classes)
		for i := range out {
			out[i] = s.Targets[i*s.Classes : (i+1)*s.Classes]
		}
		return out, false
	}
	classes := s.Classes
	for _, y := range s.Labels {
		classes = max(classes, y+1)
	}
	out := make([][]int8, len(s.Labels))
	for i, y := range s.Labels {
		out[i] = make([]int8, classes)
		for c := range out[i] {
			out[i][c] = Absent
		}
		if y >= 0 {
			out[i][y] = Present
		}
	}
	return out, true
}

// Matrix copies the features as a float64 matrix (the SVMs' input).
func (f Features) Matrix() Matrix {
	m := Matrix{Rows: f.N, Cols: f.Dim, Data: make([]float64, len(f.Data))}
	for i, v := range f.Data {
		m.Data[i] = float64(v)
	}
	return m
}

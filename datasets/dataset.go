// Package datasets holds the data sources (ImageNet, image lists, Places205, VOC,
// CIFAR-10, Fashion-MNIST and the demo's shapes), the transforms, with mmselfsup's names and
// semantics, and the loader. Each dataset and each transform has one file: its config, the
// config's Validate and Build, the type it builds and its registration.
package datasets

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"reflect"

	"github.com/goselfsup/goselfsup/registry"
)

// Source gives the raw samples of a dataset: the image (or its path) and its label.
type Source interface {
	Len() int
	Sample(i int) (Sample, error)
	// Classes names the labels; nil for unlabelled data.
	Classes() []string
}

// Dataset is a source and the pipeline that turns each of its samples into a model input.
type Dataset struct {
	Source   Source
	Pipeline []Transform
	// SkipCorrupt lets the loader replace samples whose image cannot be read.
	SkipCorrupt bool
}

// Normalization returns the pipeline's Normalize, or nil.
func (d *Dataset) Normalization() *Normalization {
	for _, t := range d.Pipeline {
		switch t := t.(type) {
		case *Normalization:
			return t
		case *concatPipeline: // a ConcatDataset: its first part's
			return t.src.parts[0].Normalization()
		case *multiScaleFlipAug: // mmdet 2.x's test pipelines hold it there
			if n := t.normalization(); n != nil {
				return n
			}
		}
	}
	return nil
}

// LoadError is an image that could not be read or decoded.
type LoadError struct {
	Path string
	Err  error
}

func (e *LoadError) Error() string { return e.Path + ": " + e.Err.Error() }
func (e *LoadError) Unwrap() error { return e.Err }

// Len is the number of samples.
func (d *Dataset) Len() int { return d.Source.Len() }

// Get returns sample i through the pipeline, with randomness drawn from rng.
func (d *Dataset) Get(i int, rng *rand.Rand) (Sample, error) {
	s, err := d.Source.Sample(i)
	if err != nil {
		return Sample{}, err
	}
	s.Index = i
	for _, t := range d.Pipeline {
		if err := t.Apply(&s, rng); err != nil {
			var le *LoadError
			switch {
			case errors.As(err, &le):
				return Sample{}, err
			case s.Path != "":
				return Sample{}, fmt.Errorf("%s: %w", s.Path, err)
			}
			return Sample{}, fmt.Errorf("sample %d: %w", i, err)
		}
	}
	return s, nil
}

// PipelineNormalization returns the Normalize of a dataset config's pipeline, or nil,
// without building the dataset (whose files may be absent where a model is evaluated).
func PipelineNormalization(env *registry.Env, dataset registry.Spec) (*Normalization, error) {
	cfg, err := registry.Default.Decode(dataset)
	if err != nil {
		return nil, err
	}
	v := reflect.Indirect(reflect.ValueOf(cfg))
	if c, ok := cfg.(*ConcatDatasetConfig); ok && len(c.Datasets) > 0 { // the first part's, as Dataset.Normalization
		return PipelineNormalization(env, c.Datasets[0])
	}
	f := v.FieldByName("Pipeline")
	if !f.IsValid() {
		return nil, nil
	}
	specs, _ := f.Interface().([]registry.Spec)
	for _, s := range specs {
		if s.Type == "MultiScaleFlipAug" { // mmdet 2.x's test pipelines hold it there
			t, err := registry.Build[Transform](env, s)
			if err != nil {
				return nil, err
			}
			if n := t.(*multiScaleFlipAug).normalization(); n != nil {
				return n, nil
			}
			continue
		}
		if s.Type != "Normalize" {
			continue
		}
		t, err := registry.Build[Transform](env, s)
		if err != nil {
			return nil, err
		}
		return t.(*Normalization), nil
	}
	return nil, nil
}

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

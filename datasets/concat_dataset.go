package datasets

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"sort"

	"github.com/goselfsup/goselfsup/registry"
)

// ConcatDatasetConfig is mmengine's ConcatDataset: the samples of several datasets, one
// after the other, each through its own pipeline. mmseg 1.x's voc12aug training set is one:
// PascalVOCDataset of train.txt (SegmentationClass) then of aug.txt (SegmentationClassAug).
type ConcatDatasetConfig struct {
	Datasets   []registry.Spec `toml:"datasets" registry:"datasets" doc:"the datasets, in order" required:"true"`
	LazyInit   bool            `toml:"lazy_init" doc:"mmengine's deferred loading; no effect"`
	IgnoreKeys []string        `toml:"ignore_keys" doc:"mmengine's metainfo keys allowed to differ; no effect: the metainfo (classes) is the first dataset's, and segmentation datasets must agree on their classes"`
}

func init() {
	registry.Add(registry.Datasets, "ConcatDataset", "several datasets one after the other (mmengine), each with its own pipeline",
		func() *ConcatDatasetConfig { return &ConcatDatasetConfig{} })
}

func (c *ConcatDatasetConfig) Validate() error {
	if len(c.Datasets) == 0 {
		return registry.FieldErrorf("datasets", "is required: the datasets to concatenate")
	}
	return nil
}

// Build builds the datasets. The result skips corrupt samples when every part does.
func (c *ConcatDatasetConfig) Build(env *registry.Env) (any, error) {
	parts := make([]*Dataset, len(c.Datasets))
	for i, spec := range c.Datasets {
		d, err := registry.Build[*Dataset](env, spec)
		if err != nil {
			return nil, fmt.Errorf("datasets[%d]: %w", i, err)
		}
		parts[i] = d
	}
	return concat(parts)
}

// concat is the datasets one after the other. Their numbers of classes must agree, and
// detection datasets (DetSource) may only be concatenated with detection datasets.
func concat(parts []*Dataset) (*Dataset, error) {
	src := &concatSource{}
	skip := true
	n := 0
	for i, d := range parts {
		if i > 0 && len(d.Source.Classes()) != len(src.parts[0].Source.Classes()) {
			return nil, fmt.Errorf("datasets[%d] has %d classes but datasets[0] has %d", i, len(d.Source.Classes()), len(src.parts[0].Source.Classes()))
		}
		_, det := AsDetSource(d.Source)
		if _, det0 := AsDetSource(parts[0].Source); i > 0 && det != det0 {
			return nil, fmt.Errorf("datasets[%d] and datasets[0]: one is a detection dataset and the other is not", i)
		}
		n += d.Len()
		src.parts = append(src.parts, d)
		src.ends = append(src.ends, n)
		skip = skip && d.SkipCorrupt
	}
	return &Dataset{Source: src, Pipeline: []Transform{&concatPipeline{src}}, SkipCorrupt: skip}, nil
}

// concatSource gives the samples of its parts one after the other.
type concatSource struct {
	parts []*Dataset
	ends  []int // cumulative lengths
}

func (c *concatSource) Len() int { return c.ends[len(c.ends)-1] }

// part returns the part of sample i and i's index in it.
func (c *concatSource) part(i int) (*Dataset, int) {
	k := sort.SearchInts(c.ends, i+1)
	if k == 0 {
		return c.parts[0], i
	}
	return c.parts[k], i - c.ends[k-1]
}

func (c *concatSource) Sample(i int) (Sample, error) {
	if i < 0 || i >= c.Len() {
		return Sample{}, fmt.Errorf("sample %d out of range [0, %d)", i, c.Len())
	}
	d, j := c.part(i)
	return d.Source.Sample(j)
}

func (c *concatSource) Classes() []string { return c.parts[0].Source.Classes() }

// Palette and IgnoreIndex are the first part's, for concatenated segmentation datasets.
func (c *concatSource) Palette() [][3]uint8 {
	if s, ok := c.parts[0].Source.(SegSource); ok {
		return s.Palette()
	}
	return nil
}

func (c *concatSource) IgnoreIndex() int {
	if s, ok := c.parts[0].Source.(SegSource); ok {
		return s.IgnoreIndex()
	}
	return 255
}

// DetAnnotation is sample i's box annotation, for concatenated detection datasets.
func (c *concatSource) DetAnnotation(i int) (*DetAnnotation, error) {
	if i < 0 || i >= c.Len() {
		return nil, fmt.Errorf("sample %d out of range [0, %d)", i, c.Len())
	}
	d, j := c.part(i)
	s, ok := d.Source.(DetSource)
	if !ok {
		return nil, errors.New("not a detection dataset")
	}
	return s.DetAnnotation(j)
}

// ImageSize is sample i's size as its annotation states it, for concatenated detection
// datasets.
func (c *concatSource) ImageSize(i int) (int, int, error) {
	if i < 0 || i >= c.Len() {
		return 0, 0, fmt.Errorf("sample %d out of range [0, %d)", i, c.Len())
	}
	d, j := c.part(i)
	s, ok := d.Source.(DetSource)
	if !ok {
		return 0, 0, errors.New("not a detection dataset")
	}
	return s.ImageSize(j)
}

// concatPipeline runs each sample through its own part's pipeline; Dataset.Get has set the
// sample's Index to its index in the concatenation.
type concatPipeline struct{ src *concatSource }

func (p *concatPipeline) Apply(s *Sample, rng *rand.Rand) error {
	d, _ := p.src.part(s.Index)
	for _, t := range d.Pipeline {
		if err := t.Apply(s, rng); err != nil {
			return err
		}
	}
	return nil
}

package datasets

import (
	"math/rand/v2"

	"github.com/goselfsup/goselfsup/registry"
)

// PackSelfSupInputsConfig packs the image and the algorithm's keys (sample_idx for NPID)
// into the model's inputs.
type PackSelfSupInputsConfig struct {
	Key             string   `toml:"key" doc:"mmselfsup's key of the image; no effect: the loader packs the image, its index and its label"`
	AlgorithmKeys   []string `toml:"algorithm_keys" doc:"the sample's keys the algorithm needs, such as sample_idx for NPID; no effect: the loader always packs the index"`
	PseudoLabelKeys []string `toml:"pseudo_label_keys" doc:"the keys of pseudo labels; no effect"`
	MetaKeys        []string `toml:"meta_keys" doc:"the meta information to keep, such as img_path; no effect"`
}

// PackClsInputsConfig packs the image and its label.
type PackClsInputsConfig struct {
	MetaKeys []string `toml:"meta_keys" doc:"the meta information to keep; no effect: the loader packs the image, its index and its label"`
}

// PackSegInputsConfig is mmseg's PackSegInputs: the image, its segmentation map and the
// meta information the evaluation needs (ori_shape, img_shape), which the loader packs
// into Batch.Masks, OriShapes and ImgShapes.
type PackSegInputsConfig struct {
	MetaKeys []string `toml:"meta_keys" doc:"the meta information to keep; no effect: the loader packs the image, its map, ori_shape and img_shape"`
}

func init() {
	registry.Add(registry.Transforms, "PackSegInputs", "pack the image, its segmentation map and their shapes (mmseg)",
		func() *PackSegInputsConfig {
			return &PackSegInputsConfig{MetaKeys: []string{"img_path", "seg_map_path", "ori_shape", "img_shape", "pad_shape", "scale_factor", "flip", "flip_direction", "reduce_zero_label"}}
		})
	registry.Add(registry.Transforms, "PackSelfSupInputs", "pack the image and the algorithm's keys",
		func() *PackSelfSupInputsConfig { return &PackSelfSupInputsConfig{Key: "img"} })
	registry.Add(registry.Transforms, "PackClsInputs", "pack the image and its label",
		func() *PackClsInputsConfig {
			return &PackClsInputsConfig{MetaKeys: []string{"sample_idx", "img_path", "ori_shape", "img_shape", "scale_factor", "flip", "flip_direction"}}
		})
}

// packInputs marks the end of a pipeline; the loader packs samples into batches.
type packInputs struct{}

func (packInputs) Apply(*Sample, *rand.Rand) error { return nil }

func (c *PackSelfSupInputsConfig) Build(*registry.Env) (any, error) { return packInputs{}, nil }
func (c *PackClsInputsConfig) Build(*registry.Env) (any, error)     { return packInputs{}, nil }

func (c *PackSegInputsConfig) Build(*registry.Env) (any, error) { return packInputs{}, nil }

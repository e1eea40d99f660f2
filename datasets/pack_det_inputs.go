package datasets

import (
	"errors"
	"fmt"
	"math/rand/v2"

	"github.com/goselfsup/goselfsup/registry"
)

// PackDetInputsConfig is mmdet 3.x's PackDetInputs, and the end of an mmdet 2.x pipeline
// (DefaultFormatBundle, then Collect): the loader packs the image, its ground truth boxes
// into max_gt padded slots (Batch.Det), their instance masks when LoadAnnotations loaded
// them (with_mask: DetBatch.Masks), its img_shape, ori_shape and scale_factor.
type PackDetInputsConfig struct {
	MaxGT    int      `toml:"max_gt" doc:"the box slots of each image in a batch (G_max); an image with more boxes is an error; goselfsup's own key"`
	MetaKeys []string `toml:"meta_keys" doc:"the meta information to keep; no effect: the loader packs the image, its boxes, img_shape, ori_shape and scale_factor"`
}

// CollectConfig is mmdet 2.x's Collect, which ends its pipelines (after DefaultFormatBundle
// or ImageToTensor): as PackDetInputs.
type CollectConfig struct {
	Keys     []string `toml:"keys" doc:"the results to pass on, such as [\"img\", \"gt_bboxes\", \"gt_labels\"]; no effect: the loader packs the image and, when LoadAnnotations loaded them, the boxes and labels, and the masks (gt_masks) with with_mask"`
	MaxGT    int      `toml:"max_gt" doc:"the box slots of each image in a batch (G_max); an image with more boxes is an error; goselfsup's own key"`
	MetaKeys []string `toml:"meta_keys" doc:"the meta information to keep; no effect: the loader packs img_shape, ori_shape and scale_factor"`
}

// FormatBundleConfig is mmdet 2.x's DefaultFormatBundle: the conversion of results to
// tensors, which the loader does when it packs the batch.
type FormatBundleConfig struct {
	ImgToFloat bool `toml:"img_to_float" doc:"no effect: images stay uint8 until the device normalises them"`
}

// ImageToTensorConfig is mmdet 2.x's ImageToTensor (its test pipelines): as
// DefaultFormatBundle.
type ImageToTensorConfig struct {
	Keys []string `toml:"keys" doc:"the results to convert, such as [\"img\"]; no effect"`
}

func init() {
	registry.Add(registry.Transforms, "PackDetInputs", "pack the image, its ground truth boxes (padded to max_gt) and its shapes (mmdet)",
		func() *PackDetInputsConfig {
			return &PackDetInputsConfig{MaxGT: DefaultMaxGT, MetaKeys: []string{"img_id", "img_path", "ori_shape", "img_shape", "scale_factor", "flip", "flip_direction"}}
		})
	registry.Add(registry.Transforms, "Collect", "end an mmdet 2.x pipeline: pack as PackDetInputs",
		func() *CollectConfig {
			return &CollectConfig{MaxGT: DefaultMaxGT, MetaKeys: []string{"filename", "ori_filename", "ori_shape", "img_shape", "pad_shape", "scale_factor", "flip", "flip_direction", "img_norm_cfg"}}
		})
	registry.Add(registry.Transforms, "DefaultFormatBundle", "mmdet 2.x's conversion to tensors; the loader packs batches (no effect)",
		func() *FormatBundleConfig { return &FormatBundleConfig{ImgToFloat: true} })
	registry.Add(registry.Transforms, "ImageToTensor", "mmdet 2.x's conversion of the image to a tensor; the loader packs batches (no effect)",
		func() *ImageToTensorConfig { return &ImageToTensorConfig{} })
}

func validMaxGT(n int) error {
	if n < 1 {
		return registry.FieldErrorf("max_gt", "must be positive, got %d", n)
	}
	return nil
}

func (c *PackDetInputsConfig) Validate() error { return validMaxGT(c.MaxGT) }
func (c *CollectConfig) Validate() error       { return validMaxGT(c.MaxGT) }

func (c *PackDetInputsConfig) Build(*registry.Env) (any, error) { return &packDetInputs{c.MaxGT}, nil }
func (c *CollectConfig) Build(*registry.Env) (any, error)       { return &packDetInputs{c.MaxGT}, nil }
func (c *FormatBundleConfig) Build(*registry.Env) (any, error)  { return packInputs{}, nil }
func (c *ImageToTensorConfig) Build(*registry.Env) (any, error) { return packInputs{}, nil }

// packDetInputs ends a detection pipeline: it sets the sample's box slots and refuses an
// image with more boxes than them, naming it.
type packDetInputs struct{ maxGT int }

func (t *packDetInputs) Apply(s *Sample, _ *rand.Rand) error {
	if s.Det == nil && s.GT == nil {
		return errors.New("PackDetInputs: the dataset gives no boxes (use VOCDataset or CocoDataset)")
	}
	s.MaxGT = t.maxGT
	if s.GT != nil && len(s.GT.Boxes) > t.maxGT {
		return fmt.Errorf("%d ground truth boxes, more than max_gt = %d: raise max_gt", len(s.GT.Boxes), t.maxGT)
	}
	return nil
}

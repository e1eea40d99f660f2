package datasets

import (
	"errors"

	"github.com/goselfsup/goselfsup/registry"
)

// PascalVOCDatasetConfig is mmseg 1.x's PascalVOCDataset: VOC2012 segmentation (and the SBD
// aug maps) in the VOCdevkit layout, 21 classes with background 0, 255 ignored. mmseg's
// voc12aug training set is a ConcatDataset of two of them: ann_file
// ImageSets/Segmentation/train.txt with seg_map_path SegmentationClass, and aug.txt with
// SegmentationClassAug.
type PascalVOCDatasetConfig struct {
	BaseSegDatasetConfig
}

func init() {
	registry.Add(registry.Datasets, "PascalVOCDataset", "PASCAL VOC 2012 segmentation, and the SBD aug maps (mmseg; VOCdevkit layout)",
		func() *PascalVOCDatasetConfig {
			c := PascalVOCDatasetConfig{newBaseSegDatasetConfig()}
			c.DataPrefix = DataPrefix{ImgPath: "JPEGImages", SegMapPath: "SegmentationClass"}
			c.Metainfo = vocSegMetainfo
			return &c
		})
}

// VOCSegClasses are mmseg's PascalVOCDataset classes: background and VOC's twenty.
var VOCSegClasses = append([]string{"background"}, VOCClasses...)

// vocSegMetainfo is PascalVOCDataset's METAINFO: its own classes, of which metainfo.classes
// (mmseg 1.x) or classes may name a subset.
var vocSegMetainfo = SegMetainfo{Classes: VOCSegClasses, Palette: VOCSegPalette}

// VOCSegPalette is mmseg's PascalVOCDataset palette (VOC's colour map).
var VOCSegPalette = [][]int{{0, 0, 0}, {128, 0, 0}, {0, 128, 0}, {128, 128, 0}, {0, 0, 128}, {128, 0, 128},
	{0, 128, 128}, {128, 128, 128}, {64, 0, 0}, {192, 0, 0}, {64, 128, 0}, {192, 128, 0}, {64, 0, 128},
	{192, 0, 128}, {64, 128, 128}, {192, 128, 128}, {0, 64, 0}, {128, 64, 0}, {0, 192, 0}, {128, 192, 0},
	{0, 64, 128}}

func (c *PascalVOCDatasetConfig) Validate() error {
	var errs []error
	if c.AnnFile == "" {
		errs = append(errs, registry.FieldErrorf("ann_file", "is required, such as ImageSets/Segmentation/train.txt"))
	}
	return errors.Join(c.BaseSegDatasetConfig.validate(&vocSegMetainfo), errors.Join(errs...))
}

// Build reads the list, as BaseSegDataset does (mmseg's PascalVOCDataset requires the list);
// metainfo = { classes = [...] } or classes names a subset of VOC's classes (mmseg's
// label_map).
func (c *PascalVOCDatasetConfig) Build(env *registry.Env) (any, error) {
	return c.BaseSegDatasetConfig.build(env, &vocSegMetainfo)
}

package models

import (
	"errors"
	"fmt"

	"github.com/gomlx/gomlx/pkg/core/dtypes"
	. "github.com/gomlx/gomlx/pkg/core/graph"
	"github.com/gomlx/gomlx/pkg/core/shapes"

	"github.com/goselfsup/goselfsup/registry"
)

// DataPreprocessor normalises uint8 image batches on the device: (x - mean) / std per
// channel, in 0-255 units, after an optional BGR to RGB flip (mmselfsup's bgr_to_rgb,
// mmcls's to_rgb). It is the data_preprocessor table of the algorithms, not a registered
// component.
type DataPreprocessor struct {
	Type     string     `toml:"type" doc:"SelfSupDataPreprocessor or ClsDataPreprocessor (mmselfsup's names; both act alike here)"`
	Mean     [3]float64 `toml:"mean" doc:"the mean of each channel, in 0-255 units and the network's channel order"`
	Std      [3]float64 `toml:"std" doc:"the standard deviation of each channel, in 0-255 units; all zero: no normalisation"`
	BGRToRGB bool       `toml:"bgr_to_rgb" doc:"the network sees RGB (mmselfsup's key); otherwise BGR, as mmselfsup decodes images"`
	ToRGB    bool       `toml:"to_rgb" doc:"the same as bgr_to_rgb (mmcls's key)"`
	// mmseg's SegDataPreProcessor pads on the device; goselfsup's data pipeline pads
	// instead (Pad), so these keys are accepted and change nothing here.
	PadVal    float64 `toml:"pad_val" doc:"SegDataPreProcessor: the image padding value (the pipeline pads in goselfsup; unused here)"`
	SegPadVal int     `toml:"seg_pad_val" doc:"SegDataPreProcessor: the label padding value (the pipeline pads in goselfsup; unused here)"`
	Size      []int   `toml:"size" doc:"SegDataPreProcessor: the padded size (the pipeline pads in goselfsup; unused here)"`
}

func (p *DataPreprocessor) Validate() error {
	var errs []error
	switch p.Type {
	case "", "SelfSupDataPreprocessor", "ClsDataPreprocessor", "SegDataPreProcessor":
	default:
		errs = append(errs, registry.FieldErrorf("type", "must be SelfSupDataPreprocessor, ClsDataPreprocessor or SegDataPreProcessor, got %q", p.Type))
	}
	for i, s := range p.Std {
		if s < 0 {
			errs = append(errs, registry.FieldErrorf(fmt.Sprintf("std.%d", i), "must be positive, got %g", s))
		}
	}
	return errors.Join(errs...)
}

// Preprocessor normalises uint8 RGB images on the device: (x - mean) / std in 0-255 units.
// goselfsup decodes images as RGB; mmselfsup decodes BGR and flips them when bgr_to_rgb
// (mmcls: to_rgb) is set, so the network sees RGB exactly when one of them is set, and BGR
// otherwise, as in mmselfsup.
type Preprocessor struct {
	Mean, Std [3]float64
	BGR       bool         // feed the network BGR
	DType     dtypes.DType // the model's; float32 when unset
}

// NewPreprocessor returns the preprocessor of a config; a zero std means none (mean 0,
// std 1).
func NewPreprocessor(c DataPreprocessor) Preprocessor {
	p := Preprocessor{BGR: !c.BGRToRGB && !c.ToRGB}
	for i := range 3 {
		p.Mean[i], p.Std[i] = c.Mean[i], c.Std[i]
		if c.Std[i] == 0 {
			p.Std[i] = 1
		}
	}
	return p
}

// Apply converts images (uint8 [B, H, W, 3], RGB) to normalised values of the model's dtype.
func (p Preprocessor) Apply(images *Node) *Node {
	g := images.Graph()
	dtype := p.DType
	if dtype == dtypes.InvalidDType {
		dtype = dtypes.Float32
	}
	x := ConvertDType(images, dtype)
	if p.BGR {
		x = Reverse(x, -1)
	}
	// The mean and std are in the order of the channels the network sees, as in mmengine.
	mean := Reshape(ConvertDType(Const(g, p.Mean[:]), dtype), 1, 1, 1, 3)
	std := Reshape(ConvertDType(Const(g, p.Std[:]), dtype), 1, 1, 1, 3)
	return Div(Sub(x, mean), std)
}

// ZeroPadding sets the pixels of x ([B, H, W, C]) outside each image's size (imgShapes,
// int32 [B, 2]: height, width) to 0. The data pipeline pads the uint8 images before the
// model normalises them; mmseg pads after normalising (SegDataPreProcessor, pad_val 0), so
// zeroing the padding after Apply gives mmseg's input.
func ZeroPadding(x, imgShapes *Node) *Node {
	g := x.Graph()
	dims := x.Shape().Dimensions
	b, h, w := dims[0], dims[1], dims[2]
	rows := Iota(g, shapes.Make(dtypes.Int32, b, h, w), 1)
	cols := Iota(g, shapes.Make(dtypes.Int32, b, h, w), 2)
	hs := BroadcastToDims(Reshape(Slice(imgShapes, AxisRange(), AxisElem(0)), b, 1, 1), b, h, w)
	ws := BroadcastToDims(Reshape(Slice(imgShapes, AxisRange(), AxisElem(1)), b, 1, 1), b, h, w)
	inside := LogicalAnd(LessThan(rows, hs), LessThan(cols, ws))
	inside = BroadcastToDims(ExpandAxes(inside, -1), dims...)
	return Where(inside, x, ZerosLike(x))
}

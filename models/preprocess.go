package models

import (
	"github.com/gomlx/gomlx/pkg/core/dtypes"
	. "github.com/gomlx/gomlx/pkg/core/graph"
)

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

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
	Mean, Std [3]float32
	BGR       bool // feed the network BGR
}

// NewPreprocessor returns the preprocessor of a config; a zero std means none (mean 0,
// std 1).
func NewPreprocessor(c DataPreprocessor) Preprocessor {
	p := Preprocessor{BGR: !c.BGRToRGB && !c.ToRGB}
	for i := range 3 {
		p.Mean[i], p.Std[i] = float32(c.Mean[i]), float32(c.Std[i])
		if c.Std[i] == 0 {
			p.Std[i] = 1
		}
	}
	return p
}

// Apply converts images (uint8 [B, H, W, 3], RGB) to normalised float32.
func (p Preprocessor) Apply(images *Node) *Node {
	g := images.Graph()
	x := ConvertDType(images, dtypes.Float32)
	if p.BGR {
		x = Reverse(x, -1)
	}
	// The mean and std are in the order of the channels the network sees, as in mmengine.
	mean := Reshape(Const(g, p.Mean[:]), 1, 1, 1, 3)
	std := Reshape(Const(g, p.Std[:]), 1, 1, 1, 3)
	return Div(Sub(x, mean), std)
}

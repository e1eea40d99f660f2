package models

import (
	. "github.com/gomlx/gomlx/pkg/core/graph"

	"github.com/goselfsup/goselfsup/models/nn"
	"github.com/goselfsup/goselfsup/registry"
)

// GlobalAveragePoolingConfig is mmcls's GlobalAveragePooling neck.
type GlobalAveragePoolingConfig struct {
	Dim int `toml:"dim" doc:"the dimensions of the feature maps; only 2 (images) is supported"`
}

func init() {
	registry.Add(registry.Necks, "GlobalAveragePooling", "global average pooling of the last backbone output",
		func() *GlobalAveragePoolingConfig { return &GlobalAveragePoolingConfig{Dim: 2} })
}

func (c *GlobalAveragePoolingConfig) Validate() error {
	if c.Dim != 2 {
		return registry.FieldErrorf("dim", "only 2 (images) is supported, got %d", c.Dim)
	}
	return nil
}

// GlobalAveragePooling is mmcls's GlobalAveragePooling neck, on the last backbone output.
type GlobalAveragePooling struct{}

func (c *GlobalAveragePoolingConfig) Build(*registry.Env) (any, error) {
	return GlobalAveragePooling{}, nil
}

func (GlobalAveragePooling) Forward(feats []*Node) *Node {
	return nn.GlobalAvgPool(feats[len(feats)-1])
}

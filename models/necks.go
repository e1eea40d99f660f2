package models

import (
	"fmt"

	. "github.com/gomlx/gomlx/pkg/core/graph"

	"github.com/goselfsup/goselfsup/models/nn"
	"github.com/goselfsup/goselfsup/registry"
)

// Neck maps backbone outputs to one feature vector per image.
type Neck interface {
	Forward(feats []*Node) *Node
}

// LinearNeck is mmselfsup's LinearNeck: global average pooling, then fc.
type LinearNeck struct {
	avgPool bool
	fc      *nn.Linear
}

func (c *LinearNeckConfig) Build(env *registry.Env) (any, error) {
	s, err := registry.Need[*nn.Scope](env)
	if err != nil {
		return nil, err
	}
	return &LinearNeck{avgPool: c.WithAvgPool, fc: nn.NewLinear(s.In("fc"), c.InChannels, c.OutChannels, true)}, nil
}

func (n *LinearNeck) Forward(feats []*Node) *Node {
	if len(feats) != 1 {
		panic(fmt.Sprintf("LinearNeck takes one backbone output, got %d", len(feats)))
	}
	x := feats[0]
	if n.avgPool {
		x = nn.GlobalAvgPool(x)
	} else {
		x = Reshape(x, x.Shape().Dim(0), -1)
	}
	return n.fc.Forward(x)
}

// GlobalAveragePooling is mmcls's GlobalAveragePooling neck, on the last backbone output.
type GlobalAveragePooling struct{}

func (c *GlobalAveragePoolingConfig) Build(*registry.Env) (any, error) {
	return GlobalAveragePooling{}, nil
}

func (GlobalAveragePooling) Forward(feats []*Node) *Node {
	return nn.GlobalAvgPool(feats[len(feats)-1])
}

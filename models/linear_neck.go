package models

import (
	"errors"
	"fmt"

	. "github.com/gomlx/gomlx/pkg/core/graph"

	"github.com/goselfsup/goselfsup/models/nn"
	"github.com/goselfsup/goselfsup/registry"
)

// LinearNeckConfig is mmselfsup's LinearNeck: global average pooling, then one linear layer.
type LinearNeckConfig struct {
	InChannels  int  `toml:"in_channels" doc:"the channels of the backbone output (2048 for a ResNet-50)" required:"true"`
	OutChannels int  `toml:"out_channels" doc:"the dimension of the embedding" required:"true"`
	WithAvgPool bool `toml:"with_avg_pool" doc:"average the feature map globally before the linear layer; otherwise flatten it"`
}

func init() {
	registry.Add(registry.Necks, "LinearNeck", "global average pooling and a linear layer",
		func() *LinearNeckConfig { return &LinearNeckConfig{WithAvgPool: true} })
}

func (c *LinearNeckConfig) Validate() error {
	var errs []error
	if c.InChannels < 1 {
		errs = append(errs, registry.FieldErrorf("in_channels", "must be at least 1, got %d", c.InChannels))
	}
	if c.OutChannels < 1 {
		errs = append(errs, registry.FieldErrorf("out_channels", "must be at least 1, got %d", c.OutChannels))
	}
	return errors.Join(errs...)
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

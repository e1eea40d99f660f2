package mocov2

import (
	"errors"
	"fmt"

	. "github.com/gomlx/gomlx/pkg/core/graph"

	"github.com/goselfsup/goselfsup/models/nn"
	"github.com/goselfsup/goselfsup/registry"
)

func init() {
	registry.Add(registry.Necks, "MoCoV2Neck", "MoCo v2's projection: global average pooling, fc, ReLU, fc (examples/mocov2)",
		func() *MoCoV2NeckConfig { return &MoCoV2NeckConfig{WithAvgPool: true} })
}

// MoCoV2NeckConfig is mmselfsup's MoCoV2Neck: global average pooling of the backbone's one
// output, then Linear(in, hid), ReLU, Linear(hid, out), with PyTorch's default
// initialisation. Its layers are named as mmselfsup's: neck.mlp.0 and neck.mlp.2.
type MoCoV2NeckConfig struct {
	InChannels  int  `toml:"in_channels" doc:"the channels of the backbone's output"`
	HidChannels int  `toml:"hid_channels" doc:"the width of the hidden layer"`
	OutChannels int  `toml:"out_channels" doc:"the dimension of the projection"`
	WithAvgPool bool `toml:"with_avg_pool" doc:"average the feature map globally (else flatten it)"`
}

func (c *MoCoV2NeckConfig) Validate() error {
	var errs []error
	for _, f := range []struct {
		key string
		v   int
	}{{"in_channels", c.InChannels}, {"hid_channels", c.HidChannels}, {"out_channels", c.OutChannels}} {
		if f.v < 1 {
			errs = append(errs, registry.FieldErrorf(f.key, "must be at least 1, got %d", f.v))
		}
	}
	return errors.Join(errs...)
}

// Build creates the two linear layers in the scope of the Env.
func (c *MoCoV2NeckConfig) Build(env *registry.Env) (any, error) {
	s, err := registry.Need[*nn.Scope](env)
	if err != nil {
		return nil, err
	}
	mlp := s.In("mlp")
	return &MoCoV2Neck{avgPool: c.WithAvgPool,
		fc1: nn.NewLinear(mlp.In("0"), c.InChannels, c.HidChannels, true),
		fc2: nn.NewLinear(mlp.In("2"), c.HidChannels, c.OutChannels, true)}, nil
}

// MoCoV2Neck is the built MoCoV2NeckConfig.
type MoCoV2Neck struct {
	avgPool  bool
	fc1, fc2 *nn.Linear
}

// Forward maps the backbone's one output to the projection [B, out_channels].
func (n *MoCoV2Neck) Forward(feats []*Node) *Node {
	if len(feats) != 1 {
		panic(fmt.Sprintf("MoCoV2Neck takes one backbone output, got %d", len(feats)))
	}
	x := feats[0]
	if n.avgPool {
		x = nn.GlobalAvgPool(x)
	} else {
		x = Reshape(x, x.Shape().Dim(0), -1)
	}
	return n.fc2.Forward(nn.ReLU(n.fc1.Forward(x)))
}

package heads

import (
	"errors"
	"fmt"

	. "github.com/gomlx/gomlx/pkg/core/graph"
	"github.com/gomlx/gomlx/pkg/ml/context"

	"github.com/goselfsup/goselfsup/models/nn"
	"github.com/goselfsup/goselfsup/registry"
)

// LinearClsHeadConfig is mmcls's LinearClsHead: one linear layer over pooled features.
type LinearClsHeadConfig struct {
	NumClasses int           `toml:"num_classes" doc:"the number of classes" required:"true"`
	InChannels int           `toml:"in_channels" doc:"the dimension of the pooled features (2048 for a ResNet-50's last stage)" required:"true"`
	Loss       registry.Spec `toml:"loss" registry:"losses" doc:"the classification loss"`
	Topk       []int         `toml:"topk" doc:"the k of the top-k accuracies to report"`
}

func init() {
	registry.Add(registry.Heads, "LinearClsHead", "a linear classifier over pooled features",
		func() *LinearClsHeadConfig { return &LinearClsHeadConfig{Loss: crossEntropy(), Topk: []int{1}} })
}

func (c *LinearClsHeadConfig) Validate() error {
	var errs []error
	if c.NumClasses < 2 {
		errs = append(errs, registry.FieldErrorf("num_classes", "must be at least 2, got %d", c.NumClasses))
	}
	if c.InChannels < 1 {
		errs = append(errs, registry.FieldErrorf("in_channels", "must be at least 1, got %d", c.InChannels))
	}
	return errors.Join(append(errs, validTopk(c.Topk, c.NumClasses))...)
}

func validTopk(topk []int, numClasses int) error {
	for _, k := range topk {
		if k < 1 || numClasses > 0 && k > numClasses {
			return registry.FieldErrorf("topk", "each k must be in 1..num_classes, got %v", topk)
		}
	}
	return nil
}

// LinearClsHead is mmcls's LinearClsHead: one linear layer ("fc", weights N(0, 0.01), zero
// bias) over the last of its inputs, which must be pooled vectors (a GlobalAveragePooling
// neck before it).
type LinearClsHead struct {
	fc        *nn.Linear
	criterion Loss
}

func (c *LinearClsHeadConfig) Build(env *registry.Env) (any, error) {
	s, err := registry.Need[*nn.Scope](env)
	if err != nil {
		return nil, err
	}
	loss, err := buildLoss(env, s, c.Loss)
	if err != nil {
		return nil, err
	}
	return &LinearClsHead{fc: nn.NewLinearNormal(s.In("fc"), c.InChannels, c.NumClasses, 0.01), criterion: loss}, nil
}

func (h *LinearClsHead) Logits(outs []*Node, _ bool) []*Node {
	x := outs[len(outs)-1]
	if x.Rank() != 2 {
		panic(fmt.Sprintf("LinearClsHead takes pooled features [batch, channels], got %s: add a neck such as GlobalAveragePooling", x.Shape()))
	}
	if x.Shape().Dim(1) != h.fc.InFeatures {
		panic(fmt.Sprintf("LinearClsHead: in_channels is %d but the features have %d", h.fc.InFeatures, x.Shape().Dim(1)))
	}
	return []*Node{h.fc.Forward(x)}
}

func (h *LinearClsHead) Loss(ctx *context.Context, logits []*Node, labels *Node) *Node {
	return sumLosses(ctx, h.criterion, logits, labels)
}

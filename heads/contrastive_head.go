package heads

import (
	"errors"

	"github.com/gomlx/gomlx/pkg/core/dtypes"
	. "github.com/gomlx/gomlx/pkg/core/graph"
	"github.com/gomlx/gomlx/pkg/core/shapes"
	"github.com/gomlx/gomlx/pkg/ml/context"

	"github.com/goselfsup/goselfsup/models/nn"
	"github.com/goselfsup/goselfsup/registry"
)

// ContrastiveHeadConfig is mmselfsup's ContrastiveHead: the loss over the logits
// [positive | negatives] / temperature, with the positive as class 0.
type ContrastiveHeadConfig struct {
	Loss        registry.Spec `toml:"loss" registry:"losses" doc:"the loss of the logits with the positive as class 0: CrossEntropyLoss (InfoNCE, mmselfsup) or NCELoss (the NPID paper)" required:"true"`
	Temperature float64       `toml:"temperature" doc:"the logits are divided by it (NPID: 0.07)"`
}

func init() {
	registry.Add(registry.Heads, "ContrastiveHead", "loss over [positive | negatives] / temperature (NPID, MoCo)",
		func() *ContrastiveHeadConfig { return &ContrastiveHeadConfig{Temperature: 0.1} })
}

func (c *ContrastiveHeadConfig) Validate() error {
	var errs []error
	if c.Loss.IsZero() {
		errs = append(errs, registry.FieldErrorf("loss", "is required, such as { type = \"CrossEntropyLoss\" }"))
	}
	if c.Temperature <= 0 {
		errs = append(errs, registry.FieldErrorf("temperature", "must be positive, got %g", c.Temperature))
	}
	return errors.Join(errs...)
}

// ContrastiveHead is mmselfsup's ContrastiveHead: the logits [pos | neg] / temperature, with
// the positive as class 0 of the loss.
type ContrastiveHead struct {
	Temperature float64
	Criterion   Loss
}

func (c *ContrastiveHeadConfig) Build(env *registry.Env) (any, error) {
	s, err := registry.Need[*nn.Scope](env)
	if err != nil {
		return nil, err
	}
	loss, err := buildLoss(env, s, c.Loss)
	if err != nil {
		return nil, err
	}
	return &ContrastiveHead{Temperature: c.Temperature, Criterion: loss}, nil
}

// Loss returns the loss of the positive logits [B, 1] against the negative ones [B, K].
func (h *ContrastiveHead) Loss(ctx *context.Context, pos, neg *Node) *Node {
	logits := DivScalar(Concatenate([]*Node{pos, neg}, 1), h.Temperature)
	labels := Zeros(pos.Graph(), shapes.Make(dtypes.Int32, pos.Shape().Dim(0)))
	return h.Criterion.Loss(ctx, logits, labels)
}

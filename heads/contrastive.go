package heads

import (
	"github.com/gomlx/gomlx/pkg/core/dtypes"
	. "github.com/gomlx/gomlx/pkg/core/graph"
	"github.com/gomlx/gomlx/pkg/core/shapes"
	"github.com/gomlx/gomlx/pkg/ml/context"

	"github.com/goselfsup/goselfsup/models/nn"
	"github.com/goselfsup/goselfsup/registry"
)

// Loss scores logits [B, C] against integer labels [B].
type Loss interface {
	Loss(ctx *context.Context, logits, labels *Node) *Node
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

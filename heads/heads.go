// Package heads holds the heads: NPID's contrastive head and the classification heads of
// linear evaluation. Each head has one file: its config, the config's Validate and Build,
// the type it builds and its registration.
package heads

import (
	. "github.com/gomlx/gomlx/pkg/core/graph"
	"github.com/gomlx/gomlx/pkg/ml/context"

	"github.com/goselfsup/goselfsup/models/nn"
	"github.com/goselfsup/goselfsup/registry"
)

// Loss scores logits [B, C] against integer labels [B].
type Loss interface {
	Loss(ctx *context.Context, logits, labels *Node) *Node
}

// buildLoss builds a head's loss under the scope "loss".
func buildLoss(env *registry.Env, s *nn.Scope, spec registry.Spec) (Loss, error) {
	return registry.Build[Loss](registry.With(env, s.In("loss")), spec)
}

// crossEntropy is the default loss of the classification heads.
func crossEntropy() registry.Spec { return registry.NewSpec(registry.Losses, "CrossEntropyLoss", nil) }

// sumLosses is the sum of the criterion's losses of each classifier's logits.
func sumLosses(ctx *context.Context, criterion Loss, logits []*Node, labels *Node) *Node {
	var total *Node
	for _, l := range logits {
		loss := criterion.Loss(ctx, l, labels)
		if total == nil {
			total = loss
		} else {
			total = Add(total, loss)
		}
	}
	return total
}

package heads

import (
	"fmt"

	. "github.com/gomlx/gomlx/pkg/core/graph"
	"github.com/gomlx/gomlx/pkg/ml/context"

	"github.com/goselfsup/goselfsup/models"
	"github.com/goselfsup/goselfsup/models/nn"
	"github.com/goselfsup/goselfsup/registry"
)

// LinearClsHead is mmcls's LinearClsHead: one linear layer ("fc", weights N(0, 0.01), zero
// bias) over the last of its inputs, which must be pooled vectors (a GlobalAveragePooling
// neck before it).
type LinearClsHead struct {
	fc        *nn.Linear
	criterion Loss
}

// buildLoss builds a head's loss under the scope "loss".
func buildLoss(env *registry.Env, s *nn.Scope, spec registry.Spec) (Loss, error) {
	return registry.Build[Loss](registry.With(env, s.In("loss")), spec)
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

// MultiClsHead is mmselfsup's MultiClsHead: for each backbone output of in_indices, the
// MultiPooling of the backbone's table, a batch norm ("norms.k", without affine parameters
// in the benchmark configs), flattening in PyTorch's order and a linear layer ("fcs.k",
// weights N(0, 0.01), zero bias). The backbone's out_indices must equal in_indices. With
// with_last_layer_unpool the last output skips the pooling (its 7x7 map at 224x224).
type MultiClsHead struct {
	pool      *models.MultiPooling
	unpool    bool
	norms     []*nn.BatchNorm2d
	fcs       []*nn.Linear
	criterion Loss
}

func (c *MultiClsHeadConfig) Build(env *registry.Env) (any, error) {
	s, err := registry.Need[*nn.Scope](env)
	if err != nil {
		return nil, err
	}
	channels, err := registry.Need[nn.BackboneChannels](env)
	if err != nil {
		return nil, err
	}
	if len(channels) != len(c.InIndices) {
		return nil, fmt.Errorf("MultiClsHead: in_indices %v has %d entries but the backbone gives %d outputs; make backbone.out_indices equal in_indices",
			c.InIndices, len(c.InIndices), len(channels))
	}
	pool, err := models.NewMultiPooling(c.PoolType, c.Backbone, c.InIndices)
	if err != nil {
		return nil, err
	}
	loss, err := buildLoss(env, s, c.Loss)
	if err != nil {
		return nil, err
	}
	h := &MultiClsHead{pool: pool, unpool: c.WithLastLayerUnpool, criterion: loss}
	norm := nn.NormOptions{Momentum: c.NormCfg.Momentum, Eps: c.NormCfg.Eps, Affine: c.NormCfg.Affine, RequiresGrad: c.NormCfg.RequiresGrad}
	for k, i := range c.InIndices {
		ch := channels[k]
		side := pool.Table.Sizes[i] // the adaptive side, and the specified pooling's at 224x224
		if !pool.Adaptive {
			side = isqrt(pool.Table.Dims[i] / pool.Table.Channels[i])
		}
		if h.unpool && k == len(c.InIndices)-1 {
			side = 7
		}
		h.norms = append(h.norms, nn.NewBatchNorm2d(s.In("norms").In(fmt.Sprint(k)), ch, norm))
		h.fcs = append(h.fcs, nn.NewLinearNormal(s.In("fcs").In(fmt.Sprint(k)), ch*side*side, c.NumClasses, 0.01))
	}
	return h, nil
}

func isqrt(n int) int {
	r := 0
	for (r+1)*(r+1) <= n {
		r++
	}
	return r
}

func (h *MultiClsHead) Logits(outs []*Node, train bool) []*Node {
	if len(outs) != len(h.fcs) {
		panic(fmt.Sprintf("MultiClsHead: %d backbone outputs for %d heads", len(outs), len(h.fcs)))
	}
	logits := make([]*Node, len(outs))
	for k, x := range outs {
		if !(h.unpool && k == len(outs)-1) {
			x = h.pool.Pool(x, h.pool.InIndices[k])
		}
		x = models.FlattenNCHW(h.norms[k].Forward(x, train))
		if x.Shape().Dim(1) != h.fcs[k].InFeatures {
			panic(fmt.Sprintf("MultiClsHead head %d: the pooled features have %d values, its linear layer takes %d (the specified pooling expects 224x224 images; use pool_type = \"adaptive\" for others)",
				k, x.Shape().Dim(1), h.fcs[k].InFeatures))
		}
		logits[k] = h.fcs[k].Forward(x)
	}
	return logits
}

func (h *MultiClsHead) Loss(ctx *context.Context, logits []*Node, labels *Node) *Node {
	return sumLosses(ctx, h.criterion, logits, labels)
}

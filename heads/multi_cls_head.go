package heads

import (
	"errors"
	"fmt"
	"slices"

	. "github.com/gomlx/gomlx/pkg/core/graph"
	"github.com/gomlx/gomlx/pkg/ml/context"

	"github.com/goselfsup/goselfsup/models"
	"github.com/goselfsup/goselfsup/models/nn"
	"github.com/goselfsup/goselfsup/registry"
)

// MultiClsHeadConfig is mmselfsup's MultiClsHead: for each backbone output of in_indices,
// pooling to about 9,000 dimensions ("specified": the MultiPooling table for the backbone),
// batch norm and one linear layer. mmselfsup logs the heads as feature1..feature5.
type MultiClsHeadConfig struct {
	PoolType            string            `toml:"pool_type" doc:"specified (the AvgPool2d of the backbone's MultiPooling table, for 224x224 images) or adaptive (adaptive pooling to the table's sides)"`
	InIndices           []int             `toml:"in_indices" doc:"the backbone outputs to classify, one head each: 0 is the stem, 1..4 the stages (must equal the backbone's out_indices)"`
	WithLastLayerUnpool bool              `toml:"with_last_layer_unpool" doc:"the last output skips the pooling (its 7x7 map at 224x224)"`
	Backbone            string            `toml:"backbone" doc:"the MultiPooling table: resnet50 (mmselfsup's) or resnet18"`
	NormCfg             models.NormConfig `toml:"norm_cfg" doc:"the batch norm before each linear layer (the benchmark configs turn affine off)"`
	NumClasses          int               `toml:"num_classes" doc:"the number of classes"`
	Loss                registry.Spec     `toml:"loss" registry:"losses" doc:"the classification loss of each head; the heads' losses are summed"`
}

// MultiPoolingBackbones are the backbones with a pooling table.
var MultiPoolingBackbones = []string{"resnet18", "resnet50"}

func init() {
	registry.Add(registry.Heads, "MultiClsHead", "a BN + linear classifier on each of several backbone outputs",
		func() *MultiClsHeadConfig {
			norm := models.NormConfig{Type: "BN", RequiresGrad: true, Momentum: 0.1, Eps: 1e-5, Affine: true}
			return &MultiClsHeadConfig{PoolType: "adaptive", InIndices: []int{0}, Backbone: "resnet50",
				NormCfg: norm, NumClasses: 1000, Loss: crossEntropy()}
		})
}

func (c *MultiClsHeadConfig) Validate() error {
	var errs []error
	if c.PoolType != "specified" && c.PoolType != "adaptive" {
		errs = append(errs, registry.FieldErrorf("pool_type", `must be "specified" or "adaptive", got %q`, c.PoolType))
	}
	if len(c.InIndices) == 0 {
		errs = append(errs, registry.FieldErrorf("in_indices", "must name at least one backbone output"))
	}
	for _, i := range c.InIndices {
		if i < 0 || i > 4 {
			errs = append(errs, registry.FieldErrorf("in_indices", "%d is not a ResNet output (0 = stem, 1..4 = stages)", i))
		}
	}
	if !slices.Contains(MultiPoolingBackbones, c.Backbone) {
		errs = append(errs, registry.FieldErrorf("backbone", "must be one of %v, got %q", MultiPoolingBackbones, c.Backbone))
	}
	if c.NumClasses < 2 {
		errs = append(errs, registry.FieldErrorf("num_classes", "must be at least 2, got %d", c.NumClasses))
	}
	return errors.Join(errs...)
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
	norm := c.NormCfg.Options()
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

package models

import (
	"fmt"

	"github.com/gomlx/gomlx/pkg/core/dtypes"
	. "github.com/gomlx/gomlx/pkg/core/graph"
	"github.com/gomlx/gomlx/pkg/core/shapes"
	"github.com/gomlx/gomlx/pkg/ml/context"

	"github.com/goselfsup/goselfsup/models/nn"
	"github.com/goselfsup/goselfsup/registry"
)

// ContrastiveHead scores the positive logits [B, 1] against the negative ones [B, K].
type ContrastiveHead interface {
	Loss(ctx *context.Context, pos, neg *Node) *Node
}

// Memory is a memory bank of one feature per training image.
type Memory interface {
	Rows(g *Graph, idx *Node) *Node
	Update(idx, features *Node)
	Size() int
}

// Size is the number of rows.
func (m *SimpleMemory) Size() int { return m.Length }

// Batch is what a training step sees of a batch.
type Batch struct {
	Images  *Node // uint8 [B, H, W, 3], RGB
	Indices *Node // int32 [B]: each image's index in the dataset
	Labels  *Node // int32 [B]: each image's class, for supervised heads
	// Negatives, when not nil, are the negative indices to use (int32 [B, neg_num], or
	// [neg_num] in the shared mode) instead of drawing them: for tests that compare with a
	// reference implementation.
	Negatives *Node
}

// NPID is mmselfsup's NPID algorithm.
type NPID struct {
	Backbone     Backbone
	Neck         Neck
	Head         ContrastiveHead
	Memory       Memory
	NegNum       int
	EnsureNeg    bool
	Shared       bool
	Preprocessor Preprocessor
	scope        *nn.Scope
}

// Build builds the backbone, neck, head and memory bank under the PyTorch names "backbone",
// "neck", "head" and "memory_bank".
func (c *NPIDConfig) Build(env *registry.Env) (any, error) {
	s, err := registry.Need[*nn.Scope](env)
	if err != nil {
		return nil, err
	}
	if c.Pretrained != "" {
		return nil, fmt.Errorf("pretrained: use load_from to start from a checkpoint's weights")
	}
	n := &NPID{NegNum: c.NegNum, EnsureNeg: c.EnsureNeg, Shared: c.NegMode == "shared", scope: s,
		Preprocessor: NewPreprocessor(c.DataPreprocessor)}
	n.Preprocessor.DType = s.DType()
	sub := func(name string) *registry.Env { return registry.With(env, s.In(name)) }
	if n.Backbone, err = registry.Build[Backbone](sub("backbone"), c.Backbone); err != nil {
		return nil, err
	}
	if !c.Neck.IsZero() {
		if n.Neck, err = registry.Build[Neck](sub("neck"), c.Neck); err != nil {
			return nil, err
		}
	}
	if n.Memory, err = registry.Build[Memory](sub("memory_bank"), c.MemoryBank); err != nil {
		return nil, err
	}
	if c.EnsureNeg && n.Memory.Size() < 2 {
		return nil, fmt.Errorf("ensure_neg needs a memory bank of at least 2 rows")
	}
	headEnv := registry.With(sub("head"), nn.DataSize(n.Memory.Size()))
	if n.Head, err = registry.Build[ContrastiveHead](headEnv, c.Head); err != nil {
		return nil, err
	}
	return n, nil
}

// Scope is the scope that holds the model's variables.
func (n *NPID) Scope() *nn.Scope { return n.scope }

// Embed returns the L2-normalised embeddings of a batch of uint8 images.
func (n *NPID) Embed(images *Node, train bool) *Node {
	return nn.Normalize(n.head(n.Backbone.Forward(n.Preprocessor.Apply(images), train)))
}

// allOutputs is a backbone that gives every output whatever its out_indices (ResNet).
type allOutputs interface {
	AllOutputs(x *Node, train bool) []*Node
	Pick(all []*Node) []*Node
}

// BackboneOutputs returns every output of the backbone in eval mode (the stem's and each
// stage's for a ResNet; the out_indices outputs for other backbones), for feature
// extraction.
func (n *NPID) BackboneOutputs(images *Node) []*Node {
	x := n.Preprocessor.Apply(images)
	if r, ok := n.Backbone.(allOutputs); ok {
		return r.AllOutputs(x, false)
	}
	return n.Backbone.Forward(x, false)
}

// Embedding returns the L2-normalised embedding of the neck, in eval mode, from the
// outputs that BackboneOutputs returned: what the memory bank holds for each image.
func (n *NPID) Embedding(outs []*Node) *Node {
	if r, ok := n.Backbone.(allOutputs); ok {
		outs = r.Pick(outs)
	}
	return nn.Normalize(n.head(outs))
}

// head maps the backbone's out_indices outputs to the embedding before normalisation: the
// neck, or global average pooling of the last output without one.
func (n *NPID) head(feats []*Node) *Node {
	if n.Neck != nil {
		return n.Neck.Forward(feats)
	}
	return nn.GlobalAvgPool(feats[len(feats)-1])
}

// Features returns the features for evaluation: the backbone's last output, globally
// pooled (mmselfsup's kNN features).
func (n *NPID) Features(images *Node) *Node {
	feats := n.Backbone.Forward(n.Preprocessor.Apply(images), false)
	return nn.GlobalAvgPool(feats[len(feats)-1])
}

// Loss builds the training loss of a batch, and the memory-bank update:
//
//	f = normalise(neck(backbone(x)))
//	pos = <bank[idx], f>,  neg_k = <bank[neg_k], f>,  loss = head(pos, neg)
//
// Negatives are drawn uniformly with replacement from the whole bank, neg_num per sample
// (or, in the shared mode, neg_num for the whole batch); with ensure_neg they never equal the
// sample's own index (drawn from the other N-1 indices, the distribution that mmselfsup's
// resampling loop converges to).
func (n *NPID) Loss(ctx *context.Context, b Batch) *Node {
	g := b.Images.Graph()
	f := n.Embed(b.Images, true)
	batch, dim := f.Shape().Dim(0), f.Shape().Dim(1)
	idx := b.Indices
	posFeat := StopGradient(n.Memory.Rows(g, idx))
	pos := ExpandAxes(ReduceSum(Mul(posFeat, f), -1), -1) // [B, 1]

	negIdx := b.Negatives
	var neg *Node
	if n.Shared {
		if negIdx == nil {
			negIdx = n.drawNegatives(ctx, g, idx, shapes.Make(dtypes.Int32, n.NegNum))
		}
		negFeat := StopGradient(n.Memory.Rows(g, negIdx))          // [K, C]
		neg = DotGeneral(f, []int{1}, nil, negFeat, []int{1}, nil) // [B, K]
	} else {
		if negIdx == nil {
			negIdx = n.drawNegatives(ctx, g, idx, shapes.Make(dtypes.Int32, batch, n.NegNum))
		}
		negFeat := StopGradient(n.Memory.Rows(g, Reshape(negIdx, -1)))
		negFeat = Reshape(negFeat, batch, n.NegNum, dim)                     // [B, K, C]
		neg = DotGeneral(negFeat, []int{2}, []int{0}, f, []int{1}, []int{0}) // [B, K]
	}
	loss := n.Head.Loss(ctx, pos, neg)
	n.Memory.Update(idx, f)
	return loss
}

// drawNegatives draws indices uniformly from the bank with the context's random state; with
// ensure_neg (per-sample mode only), uniformly from the indices other than the sample's own.
func (n *NPID) drawNegatives(ctx *context.Context, g *Graph, idx *Node, s shapes.Shape) *Node {
	size := n.Memory.Size()
	if !n.EnsureNeg {
		return ConvertDType(ctx.RandomIntN(g, int64(size), s), dtypes.Int32)
	}
	r := ConvertDType(ctx.RandomIntN(g, int64(size-1), s), dtypes.Int32)
	return Add(r, ConvertDType(GreaterOrEqual(r, ExpandAxes(idx, -1)), dtypes.Int32))
}

// MemorySize is the number of rows of the memory bank: one per training image.
func (n *NPID) MemorySize() int { return n.Memory.Size() }

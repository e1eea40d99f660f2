package models

import (
	"errors"
	"fmt"

	"github.com/gomlx/gomlx/pkg/core/dtypes"
	. "github.com/gomlx/gomlx/pkg/core/graph"
	"github.com/gomlx/gomlx/pkg/core/shapes"
	"github.com/gomlx/gomlx/pkg/ml/context"

	"github.com/goselfsup/goselfsup/models/nn"
	"github.com/goselfsup/goselfsup/registry"
)

// NPIDConfig is mmselfsup's NPID: the positive of a sample is the memory-bank row of the
// same image, and neg_num negatives are drawn uniformly, with replacement, from the bank.
type NPIDConfig struct {
	Backbone   registry.Spec `toml:"backbone" registry:"backbones" doc:"the backbone, such as a ResNet" required:"true"`
	Neck       registry.Spec `toml:"neck" registry:"necks" doc:"the neck that maps the backbone outputs to the embedding; none: global average pooling of the last output"`
	Head       registry.Spec `toml:"head" registry:"heads" doc:"the head that scores the positive against the negatives, such as ContrastiveHead" required:"true"`
	MemoryBank registry.Spec `toml:"memory_bank" registry:"memories" doc:"the memory bank of one embedding per training image, such as SimpleMemory" required:"true"`
	NegNum     int           `toml:"neg_num" doc:"the negatives drawn from the memory bank for each sample (for the whole batch with neg_mode = shared)"`
	EnsureNeg  bool          `toml:"ensure_neg" doc:"never draw a sample's own index as one of its negatives (per_sample mode only)"`
	// NegMode is "per_sample" (mmselfsup: neg_num negatives for each image) or "shared"
	// (goselfsup's own: neg_num negatives for the whole batch, a [B, C] x [C, K] product
	// instead of a [B, K, C] gather).
	NegMode          string           `toml:"neg_mode" doc:"per_sample (mmselfsup: neg_num negatives for each image) or shared (neg_num for the whole batch, one matrix product); goselfsup's own key"`
	DataPreprocessor DataPreprocessor `toml:"data_preprocessor" doc:"how the uint8 images are normalised on the device"`
	Pretrained       string           `toml:"pretrained" doc:"not supported: use load_from to start from a checkpoint's weights"`
}

func init() {
	registry.Add(registry.Algorithms, "NPID", "non-parametric instance discrimination with a memory bank",
		func() *NPIDConfig { return &NPIDConfig{NegNum: 65536, NegMode: "per_sample"} })
}

func (c *NPIDConfig) Validate() error {
	var errs []error
	required := []struct {
		key  string
		spec registry.Spec
	}{{"backbone", c.Backbone}, {"head", c.Head}, {"memory_bank", c.MemoryBank}}
	for _, r := range required {
		if r.spec.IsZero() {
			errs = append(errs, registry.FieldErrorf(r.key, "is required"))
		}
	}
	if c.NegNum < 1 {
		errs = append(errs, registry.FieldErrorf("neg_num", "must be at least 1, got %d", c.NegNum))
	}
	if c.NegMode != "per_sample" && c.NegMode != "shared" {
		errs = append(errs, registry.FieldErrorf("neg_mode", `must be "per_sample" or "shared", got %q`, c.NegMode))
	}
	if c.EnsureNeg && c.NegMode == "shared" {
		errs = append(errs, registry.FieldErrorf("ensure_neg", `applies to neg_mode = "per_sample" only`))
	}
	return errors.Join(errs...)
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
// The loss is the mean over this device's samples; the runner averages the gradients of the
// devices. Negatives are drawn uniformly with replacement from the whole bank, neg_num per sample
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

	// On several devices, each draws the negatives of the whole global batch (the random
	// state is the same everywhere) and keeps its own samples' rows, and every device
	// writes every device's features to its copy of the bank: the draws and the bank are
	// those of one device with the global batch.
	allIdx := nn.GatherRows(ctx, idx)
	negIdx := b.Negatives
	var neg *Node
	if n.Shared {
		if negIdx == nil {
			negIdx = n.drawNegatives(ctx, g, allIdx, shapes.Make(dtypes.Int32, n.NegNum))
		}
		negFeat := StopGradient(n.Memory.Rows(g, negIdx))          // [K, C]
		neg = DotGeneral(f, []int{1}, nil, negFeat, []int{1}, nil) // [B, K]
	} else {
		if negIdx == nil {
			all := allIdx.Shape().Dim(0)
			negIdx = nn.MyRows(ctx, n.drawNegatives(ctx, g, allIdx, shapes.Make(dtypes.Int32, all, n.NegNum)))
		}
		negFeat := StopGradient(n.Memory.Rows(g, Reshape(negIdx, -1)))
		negFeat = Reshape(negFeat, batch, n.NegNum, dim)                     // [B, K, C]
		neg = DotGeneral(negFeat, []int{2}, []int{0}, f, []int{1}, []int{0}) // [B, K]
	}
	loss := n.Head.Loss(ctx, pos, neg)
	n.Memory.Update(allIdx, nn.GatherRows(ctx, StopGradient(f)))
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

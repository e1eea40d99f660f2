// Package mocov2 is an out-of-tree method for goselfsup, written against its public API only:
// MoCo v2 (He et al. 2020, Chen et al. 2020) as mmselfsup implements it, with the
// components that its recipe needs and goselfsup does not ship. Each registers itself from
// init(), so a program that imports this package (cmd/mocov2) trains and evaluates it with
// goselfsup's own entry points:
//
//   - algorithms.MoCoV2: a query encoder (backbone + neck), a key encoder that is its
//     exponential moving average, a queue of negative keys and the InfoNCE loss;
//   - necks.MoCoV2Neck: mmselfsup's two-layer MLP projection (fc, ReLU, fc);
//   - optimizers.AdamW: PyTorch's AdamW (decoupled weight decay);
//   - hooks.MomentumScheduleHook: a cosine schedule of the key encoder's momentum (BYOL's);
//   - evaluators.NearestCentroid: a nearest-class-mean classifier of the features.
package mocov2

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"strings"

	"github.com/gomlx/gomlx/pkg/core/dtypes"
	. "github.com/gomlx/gomlx/pkg/core/graph"
	"github.com/gomlx/gomlx/pkg/core/shapes"
	"github.com/gomlx/gomlx/pkg/ml/context"

	"github.com/goselfsup/goselfsup/models"
	"github.com/goselfsup/goselfsup/models/nn"
	"github.com/goselfsup/goselfsup/registry"
)

func init() {
	registry.Add(registry.Algorithms, "MoCoV2", "MoCo v2: momentum key encoder, queue of negatives, InfoNCE (examples/mocov2)",
		func() *MoCoV2Config {
			return &MoCoV2Config{QueueLen: 65536, FeatDim: 128, Momentum: 0.001, Views: defaultViews(), ShuffleBNGroups: 1}
		})
}

// MoCoV2Config is mmselfsup 1.x's MoCo (configs/selfsup/_base_/models/mocov2.py), whose keys
// it keeps, plus views, which makes the two views of each image in the graph.
type MoCoV2Config struct {
	Backbone registry.Spec `toml:"backbone" registry:"backbones" doc:"the backbone of both encoders"`
	Neck     registry.Spec `toml:"neck" registry:"necks" doc:"the projection of both encoders, such as MoCoV2Neck"`
	Head     registry.Spec `toml:"head" registry:"heads" doc:"the loss over [positive | queue] logits: ContrastiveHead"`
	QueueLen int           `toml:"queue_len" doc:"the number of negative keys in the queue"`
	FeatDim  int           `toml:"feat_dim" doc:"the dimension of the keys: the neck's output"`
	// Momentum follows mmengine's ExponentialMovingAverage, as mmselfsup 1.x does: it is the
	// weight of the query encoder, so 0.001 is the MoCo paper's m = 0.999.
	Momentum float64     `toml:"momentum" doc:"the weight of the query encoder in the key encoder's moving average (mmengine's convention: 0.001 is MoCo's m = 0.999)"`
	Views    ViewsConfig `toml:"views" doc:"the in-graph augmentation that makes the two views of each image"`
	// ShuffleBNGroups emulates MoCo's shuffling batch norm on one device; see MoCoV2.Loss.
	ShuffleBNGroups  int                     `toml:"shuffle_bn_groups" doc:"emulate shuffling BN on one device: normalise the batch in this many groups, the keys' interleaved with the queries' (1: off)"`
	DataPreprocessor models.DataPreprocessor `toml:"data_preprocessor" doc:"the normalisation of the uint8 images"`
}

func (c *MoCoV2Config) Validate() error {
	var errs []error
	for _, r := range []struct {
		key  string
		spec registry.Spec
	}{{"backbone", c.Backbone}, {"neck", c.Neck}, {"head", c.Head}} {
		if r.spec.IsZero() {
			errs = append(errs, registry.FieldErrorf(r.key, "is required"))
		}
	}
	if c.QueueLen < 1 {
		errs = append(errs, registry.FieldErrorf("queue_len", "must be at least 1, got %d", c.QueueLen))
	}
	if c.FeatDim < 1 {
		errs = append(errs, registry.FieldErrorf("feat_dim", "must be at least 1, got %d", c.FeatDim))
	}
	if c.ShuffleBNGroups < 1 {
		errs = append(errs, registry.FieldErrorf("shuffle_bn_groups", "must be at least 1, got %d", c.ShuffleBNGroups))
	}
	if c.Momentum < 0 || c.Momentum > 1 {
		errs = append(errs, registry.FieldErrorf("momentum", "must be in [0, 1], got %g", c.Momentum))
	}
	return errors.Join(append(errs, c.Views.validate())...)
}

// MoCoV2 is mmselfsup's MoCo with v2's MLP neck:
//
//	q = normalise(neck(backbone(view1)))                 the query encoder, trained
//	k = normalise(neck'(backbone'(view2)))               the key encoder, no gradient
//	loss = CE([q·k | q·queue] / T, class 0)              the head (InfoNCE)
//	θ' = (1 - momentum) θ' + momentum θ                  before k is computed
//	queue[ptr : ptr+B] = k, ptr = (ptr + B) mod K        after the loss
//
// Its variables have mmselfsup's names: backbone.*, neck.*, momentum_encoder.module.0.*
// (the key backbone) and momentum_encoder.module.1.* (the key neck), queue and queue_ptr;
// queue is stored [queue_len, feat_dim], the transpose of mmselfsup's. The momentum itself
// is the variable momentum_encoder.momentum, so that MomentumScheduleHook can change it
// without recompiling the train step.
type MoCoV2 struct {
	cfg                   MoCoV2Config
	scope                 *nn.Scope
	pre                   models.Preprocessor
	backbone, keyBackbone models.Backbone
	neck, keyNeck         models.Neck
	head                  models.ContrastiveHead
	// pairs are the key encoder's variables with the query encoder's they follow.
	pairs           []pair
	queue, ptr, mom *context.Variable
}

// pair is a variable of the key encoder and the one of the query encoder it follows: averaged
// for a parameter, copied for a buffer (batch-norm statistics), as mmengine's
// ExponentialMovingAverage with update_buffers = False.
type pair struct {
	key, query *context.Variable
	average    bool
}

// Build builds both encoders, the head and the queue. The key encoder starts as a copy of
// the query encoder and is not trainable.
func (c *MoCoV2Config) Build(env *registry.Env) (any, error) {
	s, err := registry.Need[*nn.Scope](env)
	if err != nil {
		return nil, err
	}
	m := &MoCoV2{cfg: *c, scope: s, pre: models.NewPreprocessor(c.DataPreprocessor)}
	m.pre.DType = s.DType()
	in := func(sc *nn.Scope) *registry.Env { return registry.With(env, sc) }
	if m.backbone, err = registry.Build[models.Backbone](in(s.In("backbone")), c.Backbone); err != nil {
		return nil, err
	}
	if m.neck, err = registry.Build[models.Neck](in(s.In("neck")), c.Neck); err != nil {
		return nil, err
	}
	if m.head, err = registry.Build[models.ContrastiveHead](in(s.In("head")), c.Head); err != nil {
		return nil, err
	}
	key := s.In("momentum_encoder").In("module")
	if m.keyBackbone, err = registry.Build[models.Backbone](in(key.In("0")), c.Backbone); err != nil {
		return nil, fmt.Errorf("the key encoder's backbone: %w", err)
	}
	if m.keyNeck, err = registry.Build[models.Neck](in(key.In("1")), c.Neck); err != nil {
		return nil, fmt.Errorf("the key encoder's neck: %w", err)
	}
	for _, p := range [][2]*nn.Scope{{key.In("0"), s.In("backbone")}, {key.In("1"), s.In("neck")}} {
		if err := m.follow(p[0].Context(), p[1].Context()); err != nil {
			return nil, err
		}
	}

	ctx := s.Context().Checked(false)
	rng := rand.New(rand.NewPCG(s.Seed(), 0x6d6f636f))
	m.queue = ctx.VariableWithValue("queue", s.Tensor(unitRows(rng, c.QueueLen, c.FeatDim), c.QueueLen, c.FeatDim))
	m.queue.SetTrainable(false)
	m.ptr = ctx.VariableWithValue("queue_ptr", int64(0))
	m.ptr.SetTrainable(false)
	m.mom = ctx.In("momentum_encoder").VariableWithValue("momentum", s.Tensor([]float64{c.Momentum}))
	m.mom.SetTrainable(false)
	return m, nil
}

// follow pairs every variable under key with the variable of the same relative path under
// query, copies its value and makes it non-trainable.
func (m *MoCoV2) follow(key, query *context.Context) error {
	for v := range key.IterVariablesInScope() {
		rel := strings.TrimPrefix(v.Scope(), key.Scope())
		q := query.GetVariableByScopeAndName(query.Scope()+rel, v.Name())
		if q == nil || !q.Shape().Equal(v.Shape()) {
			return fmt.Errorf("the key encoder's %s has no counterpart in the query encoder", nn.TorchName(v))
		}
		t, err := q.Value()
		if err != nil {
			return err
		}
		if t, err = t.LocalClone(); err != nil {
			return err
		}
		if err := v.SetValue(t); err != nil {
			return err
		}
		m.pairs = append(m.pairs, pair{key: v, query: q, average: q.Trainable && v.DType().IsFloat()})
		v.SetTrainable(false)
	}
	return nil
}

// unitRows draws n rows of dim standard normal values and normalises each: mmselfsup's
// queue initialisation (randn, then normalize).
func unitRows(rng *rand.Rand, n, dim int) []float64 {
	out := make([]float64, n*dim)
	for i := 0; i < n; i++ {
		row := out[i*dim : (i+1)*dim]
		var norm float64
		for j := range row {
			row[j] = rng.NormFloat64()
			norm += row[j] * row[j]
		}
		norm = math.Max(math.Sqrt(norm), 1e-12)
		for j := range row {
			row[j] /= norm
		}
	}
	return out
}

// Loss builds a training step's loss, the key encoder's update and the queue's.
//
// The two views: goselfsup's data pipeline gives one augmented image per sample (for the
// demo: RandomResizedCrop, grayscale, colour jitter, flip, on the host). MoCo needs two
// augmentations of each image, so each view here is a further random resized crop, flip,
// colour jitter and grayscale of that image, drawn independently in the graph from the
// context's random state (see ViewsConfig). mmselfsup instead runs the whole pipeline twice
// on the original image; here both views start from the pipeline's one crop.
//
// Shuffling batch norm: on several devices, mmselfsup's MoCo shuffles the keys' images
// across devices, so that a key is normalised with the statistics of other images than its
// query; otherwise the model can match a query to its key by the statistics they share (the
// MoCo paper's "cheating"). With shuffle_bn_groups = G > 1 one device emulates G: the query
// encoder normalises G contiguous groups of the batch separately, the key encoder G groups
// of interleaved samples (i mod G), so that each key group draws on every query group. With
// G = 1, both normalise the whole batch, as mmselfsup's MoCo on one GPU does.
func (m *MoCoV2) Loss(ctx *context.Context, b models.Batch) *Node {
	g := b.Images.Graph()
	imQ := m.cfg.Views.Apply(ctx, b.Images)
	imK := m.cfg.Views.Apply(ctx, b.Images)

	q := nn.Normalize(m.encode(m.backbone, m.neck, m.pre.Apply(imQ), false))
	if d := q.Shape().Dim(1); d != m.cfg.FeatDim {
		panic(fmt.Sprintf("MoCoV2: the neck gives %d dimensions, feat_dim is %d", d, m.cfg.FeatDim))
	}
	// mmselfsup updates the key encoder before computing the keys, from the query encoder's
	// parameters as they were before this step's optimizer update.
	m.updateKeyEncoder(g)
	k := StopGradient(nn.Normalize(m.encode(m.keyBackbone, m.keyNeck, m.pre.Apply(imK), true)))

	pos := ExpandAxes(ReduceSum(Mul(q, k), -1), -1)                                         // [B, 1]
	neg := DotGeneral(q, []int{1}, nil, StopGradient(m.queue.ValueGraph(g)), []int{1}, nil) // [B, K]
	loss := m.head.Loss(ctx, pos, neg)
	m.enqueue(g, k)
	return loss
}

// encode runs an encoder in training mode on x, in shuffle_bn_groups groups of samples that
// batch norm normalises separately: contiguous ones, or with interleave samples i mod G.
// Each group updates the running statistics in turn, as G consecutive batches would.
func (m *MoCoV2) encode(backbone models.Backbone, neck models.Neck, x *Node, interleave bool) *Node {
	groups, n := m.cfg.ShuffleBNGroups, x.Shape().Dim(0)
	if groups <= 1 {
		return neck.Forward(backbone.Forward(x, true))
	}
	if n%groups != 0 {
		panic(fmt.Sprintf("MoCoV2: shuffle_bn_groups = %d does not divide the batch of %d", groups, n))
	}
	var perm, inverse []int32
	if interleave {
		perm, inverse = make([]int32, n), make([]int32, n)
		for i := range n {
			j := i%groups*(n/groups) + i/groups // sample i goes to group i mod G
			perm[j], inverse[i] = int32(i), int32(j)
		}
		x = Gather(x, ExpandAxes(Const(x.Graph(), perm), -1))
	}
	size := n / groups
	outs := make([]*Node, groups)
	for j := range groups {
		outs[j] = neck.Forward(backbone.Forward(Slice(x, AxisRange(j*size, (j+1)*size)), true))
	}
	y := Concatenate(outs, 0)
	if interleave {
		y = Gather(y, ExpandAxes(Const(x.Graph(), inverse), -1))
	}
	return y
}

// updateKeyEncoder sets the key encoder's parameters to (1 - momentum) key + momentum query
// and copies the query encoder's buffers.
func (m *MoCoV2) updateKeyEncoder(g *Graph) {
	mom := m.mom.ValueGraph(g)
	for _, p := range m.pairs {
		q := StopGradient(p.query.ValueGraph(g))
		if !p.average {
			p.key.SetValueGraph(q)
			continue
		}
		w := ConvertDType(mom, q.DType())
		p.key.SetValueGraph(Add(Mul(OneMinus(w), p.key.ValueGraph(g)), Mul(w, q)))
	}
}

// enqueue writes the batch's keys [B, C] into the queue from queue_ptr on, wrapping around,
// and advances queue_ptr by B: a FIFO of the last queue_len keys. Rows are selected with
// Where rather than a dynamic slice, which the pure-Go backend lacks.
func (m *MoCoV2) enqueue(g *Graph, keys *Node) {
	n, dim := keys.Shape().Dim(0), keys.Shape().Dim(1)
	size := m.cfg.QueueLen
	if n > size {
		panic(fmt.Sprintf("MoCoV2: a batch of %d keys does not fit a queue_len of %d", n, size))
	}
	ptr := m.ptr.ValueGraph(g)
	rows := Iota(g, shapes.Make(dtypes.Int64, size), 0)
	j := Mod(AddScalar(Sub(rows, ptr), float64(size)), Scalar(g, dtypes.Int64, size)) // row's place after ptr
	fresh := LessThan(j, Scalar(g, dtypes.Int64, n))
	src := Gather(keys, ExpandAxes(ConvertDType(MinScalar(j, n-1), dtypes.Int32), -1)) // [K, C]
	queue := m.queue.ValueGraph(g)
	mask := BroadcastToDims(ExpandAxes(fresh, -1), size, dim)
	m.queue.SetValueGraph(Where(mask, ConvertDType(src, queue.DType()), queue))
	m.ptr.SetValueGraph(Mod(AddScalar(ptr, float64(n)), Scalar(g, dtypes.Int64, size)))
}

// Features returns the features for evaluation: the query backbone's last output, globally
// pooled, in eval mode.
func (m *MoCoV2) Features(images *Node) *Node {
	feats := m.backbone.Forward(m.pre.Apply(images), false)
	return nn.GlobalAvgPool(feats[len(feats)-1])
}

// allOutputs is a backbone that gives every output whatever its out_indices (goselfsup's
// ResNets).
type allOutputs interface {
	AllOutputs(x *Node, train bool) []*Node
	Pick(all []*Node) []*Node
}

// BackboneOutputs returns every output of the query backbone in eval mode, for feature
// extraction (engine.FeatureModel).
func (m *MoCoV2) BackboneOutputs(images *Node) []*Node {
	x := m.pre.Apply(images)
	if r, ok := m.backbone.(allOutputs); ok {
		return r.AllOutputs(x, false)
	}
	return m.backbone.Forward(x, false)
}

// Embedding returns the query encoder's L2-normalised projection, from BackboneOutputs'
// outputs (engine.FeatureModel).
func (m *MoCoV2) Embedding(outs []*Node) *Node {
	if r, ok := m.backbone.(allOutputs); ok {
		outs = r.Pick(outs)
	}
	return nn.Normalize(m.neck.Forward(outs))
}

// BaseMomentum is the configured momentum (mmengine's convention).
func (m *MoCoV2) BaseMomentum() float64 { return m.cfg.Momentum }

// SetMomentum changes the momentum of the key encoder's update from the next step on.
func (m *MoCoV2) SetMomentum(momentum float64) error {
	return m.mom.SetValue(m.scope.Tensor([]float64{momentum}))
}

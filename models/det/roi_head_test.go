package det_test

import (
	"math"
	"math/rand/v2"
	"testing"

	. "github.com/gomlx/gomlx/pkg/core/graph"
	"github.com/gomlx/gomlx/pkg/core/tensors"
	"github.com/gomlx/gomlx/pkg/ml/context"

	"github.com/goselfsup/goselfsup/models/det"
	"github.com/goselfsup/goselfsup/models/nn"
	"github.com/goselfsup/goselfsup/registry"
)

// tinyShared is a test shared head: a strided 3x3 convolution doubling the channels.
type tinyShared struct {
	In   int `toml:"in_channels"`
	conv *nn.Conv2d
}

func (c *tinyShared) Build(env *registry.Env) (any, error) {
	s, err := registry.Need[*nn.Scope](env)
	if err != nil {
		return nil, err
	}
	c.conv = nn.NewConv2d(s.In("conv"), c.In, 2*c.In, 3, 2, 1, true)
	return c, nil
}
func (c *tinyShared) Forward(x *Node, train bool) *Node { return nn.ReLU(c.conv.Forward(x)) }
func (c *tinyShared) OutChannels() int                  { return 2 * c.In }

func init() {
	registry.Add(registry.SharedHeads, "TinySharedHeadForTests", "a strided convolution (tests)", func() *tinyShared { return &tinyShared{} })
}

// The RoI head's training path on a small feature map: proposals assigned and sampled with
// the GT boxes prepended, RoIAlign, the shared head, the box head's loss; the losses are
// finite and positive, and the gradients reach the features and the shared head.
func TestStandardRoIHeadLoss(t *testing.T) {
	const c, nc = 8, 5
	ctx := context.New()
	scope := nn.NewScope(ctx, 3)
	head, err := registry.Build[*det.StandardRoIHead](registry.With(nil, scope), registry.NewSpec(registry.Heads, "StandardRoIHead", map[string]any{
		"bbox_roi_extractor": map[string]any{"type": "SingleRoIExtractor", "out_channels": c, "featmap_strides": []int{16},
			"roi_layer": map[string]any{"type": "RoIAlign", "output_size": 6, "sampling_ratio": 0, "max_grid": 3}},
		"shared_head": map[string]any{"type": "TinySharedHeadForTests", "in_channels": c},
		"bbox_head": map[string]any{"type": "BBoxHead", "in_channels": 2 * c, "num_classes": nc, "roi_feat_size": 3,
			"bbox_coder": map[string]any{"type": "DeltaXYWHBBoxCoder", "target_stds": []float64{0.1, 0.1, 0.2, 0.2}}},
	}))
	if err != nil {
		t.Fatal(err)
	}
	assigner, err := registry.Build[*det.MaxIoUAssigner](nil, registry.NewSpec(det.BBoxAssigners, "MaxIoUAssigner",
		map[string]any{"pos_iou_thr": 0.5, "neg_iou_thr": 0.5, "min_pos_iou": 0.5, "match_low_quality": false}))
	if err != nil {
		t.Fatal(err)
	}
	sampler, err := registry.Build[*det.RandomSampler](nil, registry.NewSpec(det.BBoxSamplers, "RandomSampler",
		map[string]any{"num": 32, "pos_fraction": 0.25, "add_gt_as_proposals": true}))
	if err != nil {
		t.Fatal(err)
	}
	const b, fh, fw, p, g = 2, 10, 12, 40, 3
	rng := rand.New(rand.NewPCG(15, 16))
	feat := make([]float32, b*fh*fw*c)
	for i := range feat {
		feat[i] = float32(rng.NormFloat64())
	}
	box := func() []float32 {
		x, y := rng.Float64()*120, rng.Float64()*100
		return []float32{float32(x), float32(y), float32(x + 20 + rng.Float64()*60), float32(y + 20 + rng.Float64()*50)}
	}
	var props, gt []float32
	for range b * p {
		props = append(props, box()...)
	}
	for range b * g {
		gt = append(gt, box()...)
	}
	propValid := make([]bool, b*p)
	for i := range propValid {
		propValid[i] = i%p < 30
	}
	labels := []int32{0, 3, 4, 1, 2, 0}
	gtValid := []bool{true, true, true, true, true, false}
	keys := make([]int64, b*(g+p))
	for i := range keys {
		keys[i] = rng.Int64N(1 << det.KeyBits)
	}
	var params []*context.Variable
	for v := range ctx.IterVariables() {
		params = append(params, v)
	}
	outs := context.MustExecOnceN(pureGo(t), ctx, func(ctx *context.Context, in []*Node) []*Node {
		lc, lb, acc := head.Loss([]*Node{in[0]}, in[1], in[2], in[3], in[4], in[5], in[6], &det.RCNNTrain{Assigner: assigner, Sampler: sampler})
		nodes := []*Node{in[0]}
		for _, v := range params {
			nodes = append(nodes, v.ValueGraph(in[0].Graph()))
		}
		grads := Gradient(Add(lc, lb), nodes...)
		out := []*Node{lc, lb, acc, ReduceAllSum(Abs(grads[0]))}
		for _, gr := range grads[1:] {
			out = append(out, ReduceAllSum(Abs(gr)))
		}
		return out
	}, tensors.FromFlatDataAndDimensions(feat, b, fh, fw, c), tensors.FromFlatDataAndDimensions(props, b, p, 4),
		tensors.FromFlatDataAndDimensions(propValid, b, p), tensors.FromFlatDataAndDimensions(gt, b, g, 4),
		tensors.FromFlatDataAndDimensions(labels, b, g), tensors.FromFlatDataAndDimensions(gtValid, b, g),
		tensors.FromFlatDataAndDimensions(keys, b, g+p))
	lc, lb, acc := outs[0].Value().(float32), outs[1].Value().(float32), outs[2].Value().(float32)
	if !(lc > 0) || !(lb > 0) || math.IsInf(float64(lc), 0) || math.IsInf(float64(lb), 0) || acc < 0 || acc > 100 {
		t.Fatalf("loss_cls %v, loss_bbox %v, acc %v", lc, lb, acc)
	}
	if v := outs[3].Value().(float32); !(v > 0) {
		t.Errorf("no gradient reaches the features (%v)", v)
	}
	for i, v := range params {
		if gsum := outs[4+i].Value().(float32); !(gsum > 0) {
			t.Errorf("no gradient for %s", nn.TorchName(v))
		}
	}
	t.Logf("loss_cls %.4f, loss_bbox %.4f, acc %.1f; %d parameters", lc, lb, acc, len(params))
}

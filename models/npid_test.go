package models_test

import (
	"math"
	"testing"

	"github.com/gomlx/gomlx/backends"
	. "github.com/gomlx/gomlx/pkg/core/graph"
	"github.com/gomlx/gomlx/pkg/core/tensors"
	"github.com/gomlx/gomlx/pkg/ml/context"

	"github.com/goselfsup/goselfsup/engine/backend"
	_ "github.com/goselfsup/goselfsup/heads"
	_ "github.com/goselfsup/goselfsup/losses"
	"github.com/goselfsup/goselfsup/models"
	"github.com/goselfsup/goselfsup/models/nn"
	"github.com/goselfsup/goselfsup/registry"
)

// fixedBackbone returns given features, shaped as a 1x1 feature map, whatever the images.
type fixedBackbone struct{ feats [][]float32 }

func (b fixedBackbone) Forward(x *Node, _ bool) []*Node {
	f := Const(x.Graph(), b.feats)
	return []*Node{Reshape(f, len(b.feats), 1, 1, len(b.feats[0]))}
}
func (b fixedBackbone) OutChannels() []int { return []int{len(b.feats[0])} }

func normalize(v []float64) []float64 {
	var n float64
	for _, x := range v {
		n += x * x
	}
	n = math.Sqrt(n)
	out := make([]float64, len(v))
	for i, x := range v {
		out[i] = x / n
	}
	return out
}

func dot(a, b []float64) float64 {
	var s float64
	for i := range a {
		s += a[i] * b[i]
	}
	return s
}

func to64(v []float32) []float64 {
	out := make([]float64, len(v))
	for i, x := range v {
		out[i] = float64(x)
	}
	return out
}

func pureGo(t *testing.T) backends.Backend {
	t.Helper()
	b, err := backend.New("go")
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// crossEntropyLoss is NPID's loss from its definition: f = normalise(feature), logits =
// [<bank[idx], f> | <bank[neg_k], f>] / T, the mean cross-entropy with the positive as
// class 0.
func crossEntropyLoss(feats, bank [][]float32, idx []int32, negs [][]int32, temperature float64) float64 {
	var loss float64
	for i, f32 := range feats {
		f := normalize(to64(f32))
		logits := []float64{dot(to64(bank[idx[i]]), f) / temperature}
		for _, k := range negs[i] {
			logits = append(logits, dot(to64(bank[k]), f)/temperature)
		}
		var z float64
		for _, l := range logits {
			z += math.Exp(l)
		}
		loss += -(logits[0] - math.Log(z))
	}
	return loss / float64(len(feats))
}

// buildNPID builds NPID around fixed features, with a 4-row bank of 3 dimensions.
func buildNPID(t *testing.T, feats [][]float32, loss map[string]any, negNum int) (*models.NPID, *context.Context) {
	t.Helper()
	ctx := context.New()
	env := registry.With(nil, nn.NewScope(ctx, 7))
	spec := registry.NewSpec("algorithms", "NPID", map[string]any{
		"neg_num":     negNum,
		"backbone":    map[string]any{"type": "ResNet", "depth": 18}, // replaced below
		"head":        map[string]any{"type": "ContrastiveHead", "temperature": 0.5, "loss": loss},
		"memory_bank": map[string]any{"type": "SimpleMemory", "length": 4, "feat_dim": 3, "momentum": 0.5},
	})
	cfg, err := registry.Default.Decode(spec)
	if err != nil {
		t.Fatal(err)
	}
	c := cfg.(*models.NPIDConfig)
	c.Backbone = registry.NewSpec("backbones", "ResNet", map[string]any{"depth": 18, "base_channels": 1, "stem_channels": 1})
	m, err := c.Build(env)
	if err != nil {
		t.Fatal(err)
	}
	n := m.(*models.NPID)
	n.Backbone = fixedBackbone{feats}
	n.Preprocessor = models.Preprocessor{Std: [3]float64{1, 1, 1}}
	return n, ctx
}

var (
	testFeats = [][]float32{{1, 2, 2}, {0, 3, -4}}
	testBank  = [][]float32{{1, 0, 0}, {0, 0.6, 0.8}, {0, 1, 0}, {0.6, 0, -0.8}}
)

func TestNPIDLossAndBankUpdate(t *testing.T) {
	b := pureGo(t)
	n, ctx := buildNPID(t, testFeats, map[string]any{"type": "CrossEntropyLoss"}, 3)
	bank := n.Memory.(*models.SimpleMemory).Bank
	bank.MustSetValue(tensors.FromValue(testBank))
	idx := []int32{2, 0}
	negs := [][]int32{{0, 1, 3}, {1, 1, 2}}
	out := context.MustExecOnce(b, ctx, func(ctx *context.Context, images, idx, negs *Node) *Node {
		return n.Loss(ctx, models.Batch{Images: images, Indices: idx, Negatives: negs})
	}, tensors.FromShape(shapesU8(2, 1, 1, 3)), idx, negs)

	want := crossEntropyLoss(testFeats, testBank, idx, negs, 0.5)
	if got := float64(out.Value().(float32)); math.Abs(got-want) > 1e-5 {
		t.Errorf("loss = %.7f, want %.7f", got, want)
	}

	// The bank: rows 2 and 0 become normalise(0.5 old + 0.5 f); rows 1 and 3 stay.
	got := bank.MustValue().Value().([][]float32)
	for row := range testBank {
		expect := to64(testBank[row])
		for i, r := range idx {
			if int(r) == row {
				f := normalize(to64(testFeats[i]))
				mixed := make([]float64, 3)
				for j := range mixed {
					mixed[j] = 0.5*expect[j] + 0.5*f[j]
				}
				expect = normalize(mixed)
			}
		}
		for j := range expect {
			if math.Abs(float64(got[row][j])-expect[j]) > 1e-6 {
				t.Fatalf("bank row %d = %v, want %v", row, got[row], expect)
			}
		}
	}
}

func TestBankUpdateDuplicateIndices(t *testing.T) {
	b := pureGo(t)
	n, ctx := buildNPID(t, testFeats, map[string]any{"type": "CrossEntropyLoss"}, 1)
	bank := n.Memory.(*models.SimpleMemory).Bank
	bank.MustSetValue(tensors.FromValue(testBank))
	// Both samples claim row 1: the later one wins, as a sequential write would.
	context.MustExecOnce(b, ctx, func(ctx *context.Context, images, idx, negs *Node) *Node {
		return n.Loss(ctx, models.Batch{Images: images, Indices: idx, Negatives: negs})
	}, tensors.FromShape(shapesU8(2, 1, 1, 3)), []int32{1, 1}, [][]int32{{0}, {0}})
	got := bank.MustValue().Value().([][]float32)[1]
	f := normalize(to64(testFeats[1]))
	old := to64(testBank[1])
	mixed := []float64{0.5*old[0] + 0.5*f[0], 0.5*old[1] + 0.5*f[1], 0.5*old[2] + 0.5*f[2]}
	expect := normalize(mixed)
	for j := range expect {
		if math.Abs(float64(got[j])-expect[j]) > 1e-6 {
			t.Fatalf("bank row 1 = %v, want %v (the last occurrence's update)", got, expect)
		}
	}
}

func TestNCELossAndZ(t *testing.T) {
	b := pureGo(t)
	n, ctx := buildNPID(t, testFeats, map[string]any{"type": "NCELoss"}, 3)
	bank := n.Memory.(*models.SimpleMemory).Bank
	negs := [][]int32{{0, 1, 3}, {1, 1, 2}}
	idx := []int32{2, 0}
	exec := context.MustNewExec(b, ctx, func(ctx *context.Context, images, idx, negs *Node) *Node {
		return n.Loss(ctx, models.Batch{Images: images, Indices: idx, Negatives: negs})
	})
	// nce computes the NPID paper's NCE loss (lemniscate's NCECriterion) from the
	// definition, given Z (estimated from this batch when z < 0).
	nce := func(bankRows [][]float32, z float64) (float64, float64) {
		const N, K, eps = 4.0, 3.0, 1e-7
		var outs [][]float64
		var sum float64
		for i, f32 := range testFeats {
			f := normalize(to64(f32))
			row := []float64{math.Exp(dot(to64(bankRows[idx[i]]), f) / 0.5)}
			for _, k := range negs[i] {
				row = append(row, math.Exp(dot(to64(bankRows[k]), f)/0.5))
			}
			for _, v := range row {
				sum += v
			}
			outs = append(outs, row)
		}
		if z < 0 {
			z = sum / 8 * N
		}
		var loss float64
		for _, row := range outs {
			p0 := row[0] / z
			loss += math.Log(p0 / (p0 + K/N + eps))
			for _, v := range row[1:] {
				loss += math.Log((K / N) / (v/z + K/N + eps))
			}
		}
		return -loss / 2, z
	}
	bank.MustSetValue(tensors.FromValue(testBank))
	got := float64(exec.MustExec(tensors.FromShape(shapesU8(2, 1, 1, 3)), idx, negs)[0].Value().(float32))
	want, z := nce(testBank, -1)
	if math.Abs(got-want) > 1e-4*math.Abs(want) {
		t.Errorf("first NCE loss = %.6f, want %.6f", got, want)
	}
	zVar := ctx.GetVariableByScopeAndName("/head/loss", "Z")
	if zv := float64(zVar.MustValue().Value().(float32)); math.Abs(zv-z) > 1e-4*z {
		t.Errorf("Z = %g, want %g (estimated on the first batch)", zv, z)
	}
	// A second step keeps Z, though the bank moved.
	moved := bank.MustValue().Value().([][]float32)
	got = float64(exec.MustExec(tensors.FromShape(shapesU8(2, 1, 1, 3)), idx, negs)[0].Value().(float32))
	want, _ = nce(moved, z)
	if math.Abs(got-want) > 1e-4*math.Abs(want) {
		t.Errorf("second NCE loss = %.6f, want %.6f with the first Z", got, want)
	}
}

// With a bank of two rows and ensure_neg, every negative of sample 0 is row 1: the loss is
// that of K equal negatives, computable by hand.
func TestEnsureNegNeverDrawsTheSample(t *testing.T) {
	b := pureGo(t)
	ctx := context.New()
	env := registry.With(nil, nn.NewScope(ctx, 7))
	spec := registry.NewSpec("algorithms", "NPID", map[string]any{
		"neg_num": 50, "ensure_neg": true,
		"backbone":    map[string]any{"type": "ResNet", "depth": 18, "base_channels": 1, "stem_channels": 1},
		"head":        map[string]any{"type": "ContrastiveHead", "temperature": 0.5, "loss": map[string]any{"type": "CrossEntropyLoss"}},
		"memory_bank": map[string]any{"type": "SimpleMemory", "length": 2, "feat_dim": 3},
	})
	n, err := registry.Build[*models.NPID](env, spec)
	if err != nil {
		t.Fatal(err)
	}
	n.Backbone = fixedBackbone{[][]float32{{1, 2, 2}}}
	n.Preprocessor = models.Preprocessor{Std: [3]float64{1, 1, 1}}
	bank := [][]float32{{1, 0, 0}, {0, 0.6, 0.8}}
	n.Memory.(*models.SimpleMemory).Bank.MustSetValue(tensors.FromValue(bank))
	if err := ctx.SetRNGStateFromSeed(3); err != nil {
		t.Fatal(err)
	}
	got := context.MustExecOnce(b, ctx, func(ctx *context.Context, images, idx *Node) *Node {
		return n.Loss(ctx, models.Batch{Images: images, Indices: idx})
	}, tensors.FromShape(shapesU8(1, 1, 1, 3)), []int32{0})
	f := normalize([]float64{1, 2, 2})
	pos, neg := dot(to64(bank[0]), f)/0.5, dot(to64(bank[1]), f)/0.5
	want := -(pos - math.Log(math.Exp(pos)+50*math.Exp(neg)))
	if l := float64(got.Value().(float32)); math.Abs(l-want) > 1e-5 {
		t.Errorf("loss %.6f, want %.6f: some negative was the sample itself", l, want)
	}
}

// In the shared mode the negatives [K] serve the whole batch.
func TestSharedNegatives(t *testing.T) {
	b := pureGo(t)
	n, ctx := buildNPID(t, testFeats, map[string]any{"type": "CrossEntropyLoss"}, 2)
	n.Shared = true
	n.Memory.(*models.SimpleMemory).Bank.MustSetValue(tensors.FromValue(testBank))
	idx, negs := []int32{2, 0}, []int32{1, 3}
	out := context.MustExecOnce(b, ctx, func(ctx *context.Context, images, idx, negs *Node) *Node {
		return n.Loss(ctx, models.Batch{Images: images, Indices: idx, Negatives: negs})
	}, tensors.FromShape(shapesU8(2, 1, 1, 3)), idx, negs)
	want := crossEntropyLoss(testFeats, testBank, idx, [][]int32{negs, negs}, 0.5)
	if got := float64(out.Value().(float32)); math.Abs(got-want) > 1e-5 {
		t.Errorf("loss = %.7f, want %.7f", got, want)
	}
}

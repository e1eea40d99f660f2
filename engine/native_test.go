package engine_test

import (
	"math"
	"math/rand/v2"
	"path/filepath"
	"strings"
	"testing"

	. "github.com/gomlx/gomlx/pkg/core/graph"
	"github.com/gomlx/gomlx/pkg/core/tensors"
	gctx "github.com/gomlx/gomlx/pkg/ml/context"

	"github.com/goselfsup/goselfsup/engine"
	"github.com/goselfsup/goselfsup/engine/backend"
	"github.com/goselfsup/goselfsup/models"
	"github.com/goselfsup/goselfsup/registry"
)

// TestNativeKernelsMatchPureGo runs the same NPID train steps on the CPU engine with its
// native kernels (backend "go") and without them ("go:kernels=off": GoMLX's pure-Go backend
// and goselfsup's lowerings alone), from the same weights, batches and negatives, and
// compares the losses and every variable (weights, momentum buffers, batch-norm statistics,
// the memory bank): after one step in float32, after one and three in float64. The two sum
// in different orders, so they agree to float32 rounding after one step and to about 1e-12
// in float64; a bug in a kernel shows up as a difference far larger. Later float32 steps are
// not compared: on some batches (seen here with 4 and 8 images) an activation within float32
// rounding of a ReLU threshold goes either way, the sharp softmax (T = 0.07) amplifies it, and
// the losses part by 0.3% at step three while the float64 runs still agree to 1e-10.
func TestNativeKernelsMatchPureGo(t *testing.T) {
	for _, arch := range []struct {
		name     string
		backbone map[string]any
		size     int
		native   []string // the kinds of native kernels it must run
	}{
		{"CIFAR ResNet", map[string]any{"type": "ResNet_CIFAR", "depth": 18, "stem_channels": 8, "base_channels": 8}, 16,
			[]string{"convolutions", "batch norm", "NPID head", "ReLU"}},
		{"ResNet-18 stem and max-pool", map[string]any{"type": "ResNet", "depth": 18, "stage_blocks": []int{1, 1, 1, 1},
			"stem_channels": 8, "base_channels": 8}, 32, []string{"convolutions", "batch norm", "NPID head", "ReLU", "max-pooling"}},
	} {
		for _, prec := range []struct {
			dtype    string
			steps    int
			loss     float64 // relative difference of the losses
			variable float64 // relative L2 difference of each variable
		}{{"float32", 1, 1e-5, 1e-4}, {"float64", 3, 1e-10, 1e-9}} {
			t.Run(arch.name+" "+prec.dtype, func(t *testing.T) {
				on := newNativeRunner(t, "go", arch.backbone, arch.size, prec.dtype)
				off := newNativeRunner(t, "go:kernels=off", arch.backbone, arch.size, prec.dtype)
				steps := prec.steps
				for s := range steps {
					images, idx, negs := nativeBatch(rand.New(rand.NewPCG(uint64(s), 5)), arch.size)
					a := on.step(images, idx, negs)
					b := off.step(images, idx, negs)
					if math.Abs(a-b) > prec.loss*math.Abs(b) {
						t.Errorf("step %d: loss %.12g with native kernels, %.12g without", s+1, a, b)
					}
					if s == 0 || s == steps-1 {
						compareVariables(t, on.r, off.r, prec.variable, s+1)
					}
				}
				kinds := map[string]bool{}
				for _, e := range backend.ProfileOf(on.r.Backend).Entries() {
					kinds[e.Kind] = true
				}
				for _, k := range arch.native {
					if !kinds[k] {
						t.Errorf("no %s ran as native kernels (profile: %v)", k, kinds)
					}
				}
			})
		}
	}
}

const (
	nativeBatchSize = 8
	nativeNegatives = 32
	nativeBank      = 64
)

type nativeRunner struct {
	r    *engine.Runner
	exec *gctx.Exec
	size int // the image side
}

func newNativeRunner(t *testing.T, backend string, backbone map[string]any, size int, dtype string) *nativeRunner {
	t.Helper()
	tree, err := registry.NewTree(map[string]any{
		"backend": backend, "randomness": map[string]any{"seed": 7}, "env_cfg": map[string]any{"dtype": dtype},
		"model": map[string]any{
			"type": "NPID", "neg_num": nativeNegatives,
			"data_preprocessor": map[string]any{"mean": []float64{123.675, 116.28, 103.53}, "std": []float64{58.395, 57.12, 57.375}},
			"backbone":          backbone,
			"neck":              map[string]any{"type": "LinearNeck", "in_channels": 64, "out_channels": 128},
			"head":              map[string]any{"type": "ContrastiveHead", "temperature": 0.07, "loss": map[string]any{"type": "CrossEntropyLoss"}},
			"memory_bank":       map[string]any{"type": "SimpleMemory", "length": nativeBank, "feat_dim": 128},
		},
		"train_dataloader": map[string]any{"batch_size": nativeBatchSize,
			"dataset": map[string]any{"type": "DemoShapes", "num_samples": nativeBank, "size": size}},
		"optim_wrapper": map[string]any{"optimizer": map[string]any{"type": "SGD", "lr": 0.03, "momentum": 0.9, "weight_decay": 5e-4}},
		"train_cfg":     map[string]any{"type": "EpochBasedTrainLoop", "max_epochs": 1},
	}, "native")
	if err != nil {
		t.Fatal(err)
	}
	cfg := new(engine.Config)
	if err := tree.Decode(cfg); err != nil {
		t.Fatal(err)
	}
	r, err := engine.NewRunner(tree, cfg, engine.Options{WorkDir: filepath.Join(t.TempDir(), "run"), Console: &strings.Builder{}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(r.Close)
	exec := gctx.MustNewExec(r.Backend, r.Ctx, func(ctx *gctx.Context, images, idx, negs, lr *Node) *Node {
		return engine.Step(ctx, r.Model, r.Optim, models.Batch{Images: images, Indices: idx, Negatives: negs}, lr)
	})
	return &nativeRunner{r: r, exec: exec, size: size}
}

func (n *nativeRunner) step(images []uint8, idx, negs []int32) float64 {
	out := n.exec.MustExec(
		tensors.FromFlatDataAndDimensions(images, nativeBatchSize, n.size, n.size, 3),
		tensors.FromFlatDataAndDimensions(idx, nativeBatchSize),
		tensors.FromFlatDataAndDimensions(negs, nativeBatchSize, nativeNegatives),
		0.03)
	return toFloats(out[0])[0]
}

// nativeBatch returns distinct images (see rampImage), distinct indices and random negatives.
func nativeBatch(rng *rand.Rand, size int) (images []uint8, idx, negs []int32) {
	for _, i := range rng.Perm(nativeBank)[:nativeBatchSize] {
		images = append(images, rampImage(rng, size)...)
		idx = append(idx, int32(i))
	}
	negs = make([]int32, nativeBatchSize*nativeNegatives)
	for i := range negs {
		negs[i] = int32(rng.IntN(nativeBank))
	}
	return images, idx, negs
}

// compareVariables compares every variable of two runners (relative L2 difference).
func compareVariables(t *testing.T, a, b *engine.Runner, tol float64, steps int) {
	t.Helper()
	want := map[string]*tensors.Tensor{}
	b.Ctx.EnumerateVariables(func(v *gctx.Variable) { want[v.ScopeAndName()] = v.MustValue() })
	n := 0
	a.Ctx.EnumerateVariables(func(v *gctx.Variable) {
		w, ok := want[v.ScopeAndName()]
		if !ok {
			t.Errorf("%s: only with native kernels", v.ScopeAndName())
			return
		}
		n++
		if e := relError(v.MustValue(), w); e > tol {
			t.Errorf("%s: relative difference %.3g after %d step(s)", v.ScopeAndName(), e, steps)
		}
	})
	if n < 20 {
		t.Fatalf("compared only %d variables", n)
	}
}

package engine_test

import (
	"context"
	"math"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gomlx/gomlx/pkg/core/dtypes"
	gctx "github.com/gomlx/gomlx/pkg/ml/context"

	"github.com/goselfsup/goselfsup/engine"
	"github.com/goselfsup/goselfsup/registry"
)

// demoSizeConfig is the demo's NPID (configs/demo/npid_shapes.toml: ResNet-10 eight
// channels wide, 16x16 images, batch 64, 1,024 negatives, a bank of 1,000) for a few
// iterations, with the given optim_wrapper.
func demoSizeConfig(wrapper map[string]any) map[string]any {
	wrapper["optimizer"] = map[string]any{"type": "SGD", "lr": 0.03, "momentum": 0.9, "weight_decay": 5e-4}
	return map[string]any{
		"backend":    "go",
		"randomness": map[string]any{"seed": 0},
		"model": map[string]any{
			"type": "NPID", "neg_num": 1024,
			"data_preprocessor": map[string]any{"mean": []float64{123.675, 116.28, 103.53}, "std": []float64{58.395, 57.12, 57.375}},
			"backbone": map[string]any{"type": "ResNet_CIFAR", "depth": 18, "stage_blocks": []int{1, 1, 1, 1},
				"stem_channels": 8, "base_channels": 8, "out_indices": []int{4}},
			"neck":        map[string]any{"type": "LinearNeck", "in_channels": 64, "out_channels": 128},
			"head":        map[string]any{"type": "ContrastiveHead", "temperature": 0.1, "loss": map[string]any{"type": "CrossEntropyLoss"}},
			"memory_bank": map[string]any{"type": "SimpleMemory", "length": 1000, "feat_dim": 128},
		},
		"train_dataloader": map[string]any{
			"batch_size": 64, "num_workers": 2, "drop_last": true,
			"dataset": map[string]any{"type": "DemoShapes", "num_samples": 1000, "size": 16, "seed": 1, "pipeline": []any{
				map[string]any{"type": "RandomResizedCrop", "size": 16, "scale": []float64{0.4, 1}},
				map[string]any{"type": "RandomFlip", "prob": 0.5},
			}},
		},
		"optim_wrapper": wrapper,
		"train_cfg":     map[string]any{"type": "IterBasedTrainLoop", "max_iters": 3},
	}
}

// runSteps trains a few iterations and returns the runner and the losses.
func runSteps(t *testing.T, wrapper map[string]any) (*engine.Runner, []float64) {
	t.Helper()
	tree, cfg := testConfig(t, demoSizeConfig(wrapper), "amp")
	var losses []float64
	hook := recordLosses(&losses)
	console := &strings.Builder{}
	r, err := engine.NewRunner(tree, cfg, engine.Options{WorkDir: filepath.Join(t.TempDir(), "run"), Console: console,
		Hooks: []*engine.Hook{hook}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(r.Close)
	if err := r.Train(context.Background()); err != nil {
		t.Fatal(err)
	}
	return r, losses
}

// TestAmpOptimWrapperTrainStep trains the demo's NPID for three iterations in float32 and
// under AmpOptimWrapper (bfloat16): the losses agree within 2% without being equal, and
// every variable is still float32.
func TestAmpOptimWrapperTrainStep(t *testing.T) {
	r32, want := runSteps(t, map[string]any{"type": "OptimWrapper"})
	if r32.Autocast != dtypes.InvalidDType {
		t.Errorf("OptimWrapper: autocast %s", r32.Autocast)
	}
	r16, got := runSteps(t, map[string]any{"type": "AmpOptimWrapper", "dtype": "bfloat16", "loss_scale": "dynamic"})
	if r16.Autocast != dtypes.BFloat16 {
		t.Fatalf("AmpOptimWrapper: autocast %s, want bfloat16", r16.Autocast)
	}
	if len(got) != 3 || len(want) != 3 {
		t.Fatalf("losses: %v and %v, want 3 each", got, want)
	}
	for i := range got {
		if math.IsNaN(got[i]) || math.IsInf(got[i], 0) || math.Abs(got[i]-want[i]) > 0.02*math.Abs(want[i]) {
			t.Errorf("iteration %d: bfloat16 loss %.6g, float32 %.6g: more than 2%% apart", i+1, got[i], want[i])
		}
	}
	if got[0] == want[0] {
		t.Errorf("the bfloat16 loss equals the float32 one (%.9g): no autocast?", got[0])
	}
	t.Logf("losses: float32 %v, bfloat16 %v", want, got)
	n := 0
	r16.Ctx.EnumerateVariables(func(v *gctx.Variable) {
		if d := v.MustValue().DType(); d.IsFloat() && d != dtypes.Float32 {
			t.Errorf("%s: %s, want float32", v.ScopeAndName(), d)
		}
		n++
	})
	if n == 0 {
		t.Fatal("no variables")
	}
}

func TestAmpOptimWrapperRefusesFloat16(t *testing.T) {
	for _, dt := range []string{"float16", "fp16"} {
		tree, err := registry.NewTree(demoSizeConfig(map[string]any{"type": "AmpOptimWrapper", "dtype": dt}), "fp16")
		if err != nil {
			t.Fatal(err)
		}
		err = tree.Decode(new(engine.Config))
		if err == nil {
			t.Fatalf("dtype = %q: no error", dt)
		}
		for _, want := range []string{"optim_wrapper.dtype", "only bfloat16", "loss scaling", "float32's range"} {
			if !strings.Contains(err.Error(), want) {
				t.Errorf("dtype = %q: the error does not say %q:\n%v", dt, want, err)
			}
		}
	}
}

func TestAmpOptimWrapperDecode(t *testing.T) {
	decode := func(table map[string]any) (*engine.AmpOptimWrapperConfig, error) {
		table["optimizer"] = map[string]any{"type": "SGD", "lr": 0.1}
		c, err := registry.Default.Decode(registry.NewSpec(registry.OptimWrappers, "AmpOptimWrapper", table))
		if err != nil {
			return nil, err
		}
		return c.(*engine.AmpOptimWrapperConfig), nil
	}
	c, err := decode(map[string]any{})
	if err != nil {
		t.Fatal(err)
	}
	if c.DType != "bfloat16" || c.AutocastDType() != dtypes.BFloat16 || !c.LossScale.Dynamic {
		t.Errorf("defaults: dtype %q (%s), loss_scale %v; want bfloat16, dynamic", c.DType, c.AutocastDType(), c.LossScale)
	}
	c, err = decode(map[string]any{"dtype": "bf16", "loss_scale": int64(512), "clip_grad": map[string]any{"max_norm": 10.0}})
	if err != nil {
		t.Fatal(err)
	}
	if c.AutocastDType() != dtypes.BFloat16 || c.LossScale.Dynamic || c.LossScale.Scale != 512 || c.ClipGrad == nil || c.ClipGrad.MaxNorm != 10 {
		t.Errorf("dtype bf16, loss_scale 512, clip_grad: got %+v", c)
	}
	if c, err = decode(map[string]any{"loss_scale": 0.5}); err != nil || c.LossScale.Scale != 0.5 {
		t.Errorf("loss_scale 0.5: %+v, %v", c, err)
	}
	for _, bad := range []map[string]any{
		{"loss_scale": "static"},
		{"loss_scale": -1.0},
		{"loss_scale": map[string]any{"init_scale": 1024.0}},
		{"dtype": "float32"},
		{"accumulative_counts": int64(2)},
		{"loss_scal": "dynamic"},
	} {
		if _, err := decode(bad); err == nil {
			t.Errorf("%v: no error", bad)
		}
	}
	plain, err := registry.Default.Decode(registry.NewSpec(registry.OptimWrappers, "OptimWrapper",
		map[string]any{"optimizer": map[string]any{"type": "SGD", "lr": 0.1}}))
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := plain.(engine.Autocaster); ok {
		t.Error("OptimWrapper is an Autocaster")
	}
}

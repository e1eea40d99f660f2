package engine_test

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/goselfsup/goselfsup/engine"
	_ "github.com/goselfsup/goselfsup/evaluators"
	_ "github.com/goselfsup/goselfsup/heads"
	_ "github.com/goselfsup/goselfsup/losses"
	"github.com/goselfsup/goselfsup/registry"
)

// tinyConfig is NPID small enough to train in seconds on the pure-Go backend.
func tinyConfig(t *testing.T, sets ...string) (*registry.Tree, *engine.Config) {
	t.Helper()
	return testConfig(t, map[string]any{
		"backend":    "go",
		"randomness": map[string]any{"seed": 3},
		"model": map[string]any{
			"type": "NPID", "neg_num": 32,
			"data_preprocessor": map[string]any{"mean": []float64{128, 128, 128}, "std": []float64{64, 64, 64}, "bgr_to_rgb": true},
			"backbone":          map[string]any{"type": "ResNet_CIFAR", "depth": 18, "stage_blocks": []int{1, 1, 1, 1}, "stem_channels": 4, "base_channels": 4},
			"neck":              map[string]any{"type": "LinearNeck", "in_channels": 32, "out_channels": 16},
			"head":              map[string]any{"type": "ContrastiveHead", "temperature": 0.1, "loss": map[string]any{"type": "CrossEntropyLoss"}},
			"memory_bank":       map[string]any{"type": "SimpleMemory", "length": 96, "feat_dim": 16},
		},
		"train_dataloader": map[string]any{
			"batch_size": 16, "num_workers": 2, "drop_last": true,
			"dataset": map[string]any{"type": "DemoShapes", "num_samples": 96, "size": 8, "seed": 1, "pipeline": []any{
				map[string]any{"type": "RandomResizedCrop", "size": 8, "scale": []float64{0.5, 1}},
				map[string]any{"type": "RandomFlip", "prob": 0.5},
			}},
		},
		"val_dataloader": map[string]any{
			"batch_size": 20, "dataset": map[string]any{"type": "DemoShapes", "num_samples": 40, "size": 8, "seed": 2},
		},
		"optim_wrapper":   map[string]any{"optimizer": map[string]any{"type": "SGD", "lr": 0.03, "momentum": 0.9, "weight_decay": 5e-4}},
		"param_scheduler": []any{map[string]any{"type": "MultiStepLR", "milestones": []int{2}}},
		"train_cfg":       map[string]any{"type": "EpochBasedTrainLoop", "max_epochs": 3},
		"default_hooks": map[string]any{
			"logger":     map[string]any{"type": "LoggerHook", "interval": 2},
			"checkpoint": map[string]any{"type": "CheckpointHook", "interval": 1, "max_keep_ckpts": 2},
		},
		"custom_hooks": []any{map[string]any{"type": "KNNHook", "num_knn": []int{1, 5}}},
	}, "tiny", sets...)
}

// testConfig makes a config tree of table, applies the overrides and decodes it.
func testConfig(t *testing.T, table map[string]any, name string, sets ...string) (*registry.Tree, *engine.Config) {
	t.Helper()
	tree, err := registry.NewTree(table, name)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range sets {
		if err := tree.Set(s); err != nil {
			t.Fatal(err)
		}
	}
	cfg := new(engine.Config)
	if err := tree.Decode(cfg); err != nil {
		t.Fatal(err)
	}
	return tree, cfg
}

func train(t *testing.T, dir string, opts engine.Options, ctx context.Context, sets ...string) (*engine.Runner, error) {
	t.Helper()
	tree, cfg := tinyConfig(t, sets...)
	opts.WorkDir = dir
	opts.Console = &strings.Builder{}
	r, err := engine.NewRunner(tree, cfg, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(r.Close)
	return r, r.Train(ctx)
}

func TestTrainLeavesAWorkDir(t *testing.T) {
	dir := t.TempDir()
	r, err := train(t, dir, engine.Options{}, context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"last_checkpoint", "epoch_2.ckpt", "epoch_3.ckpt"} {
		if _, err := os.Stat(filepath.Join(dir, f)); err != nil {
			t.Errorf("work_dir lacks %s", f)
		}
	}
	run := r.RunDir
	if filepath.Dir(run) != dir {
		t.Fatalf("the run's folder %s is not in the work_dir %s", run, dir)
	}
	for _, f := range []string{"config.toml", "log.jsonl", filepath.Base(run) + ".log", "metrics.json", "vis_data/scalars.json"} {
		if _, err := os.Stat(filepath.Join(run, f)); err != nil {
			t.Errorf("the run's folder lacks %s", f)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "epoch_1.ckpt")); err == nil {
		t.Error("max_keep_ckpts = 2 kept epoch_1.ckpt")
	}
	var metrics map[string]float64
	data, _ := os.ReadFile(filepath.Join(run, "metrics.json"))
	if err := json.Unmarshal(data, &metrics); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"knn_top1_k1", "knn_top1_k5", "random_init_knn_top1_k1", "random_init_knn_top1_k5"} {
		if v, ok := metrics[k]; !ok || v < 0 || v > 100 {
			t.Errorf("metrics.json: %s = %v", k, v)
		}
	}
	log, _ := os.ReadFile(filepath.Join(run, "log.jsonl"))
	if !strings.Contains(string(log), `"msg":"Epoch(train) [3][6/6]"`) || !strings.Contains(string(log), `"lr":0.003`) {
		t.Errorf("the log lacks the last iteration or the stepped learning rate:\n%s", log)
	}
}

// recordLosses returns a hook that appends each iteration's loss to *losses.
func recordLosses(losses *[]float64) *engine.Hook {
	return &engine.Hook{Name: "losses", Priority: engine.PriorityLowest,
		AfterTrainIter: func(_ *engine.Runner, it engine.IterInfo) error {
			*losses = append(*losses, it.Loss)
			return nil
		}}
}

// cancelAt stops the run at an iteration, as a kill would, without saving anything.
func cancelAt(epoch, iter int, cancel context.CancelFunc) *engine.Hook {
	return &engine.Hook{Name: "cancelAt", Priority: engine.PriorityLowest,
		AfterTrainIter: func(r *engine.Runner, it engine.IterInfo) error {
			if it.Epoch == epoch && it.Iter == iter {
				cancel()
			}
			return nil
		}}
}

func TestResumeAfterKillMatchesUninterruptedRun(t *testing.T) {
	whole := t.TempDir()
	if _, err := train(t, whole, engine.Options{}, context.Background()); err != nil {
		t.Fatal(err)
	}

	killed := t.TempDir()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	_, err := train(t, killed, engine.Options{Hooks: []*engine.Hook{cancelAt(2, 3, cancel)}}, ctx)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("the killed run ended with %v", err)
	}
	if _, err := os.Stat(filepath.Join(killed, "epoch_3.ckpt")); err == nil {
		t.Fatal("the killed run saved its last epoch")
	}
	r, err := train(t, killed, engine.Options{Resume: "auto"}, context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if !r.Resumed() {
		t.Fatal("the run did not resume")
	}

	a, err := engine.LoadCheckpoint(filepath.Join(whole, "epoch_3.ckpt"))
	if err != nil {
		t.Fatal(err)
	}
	b, err := engine.LoadCheckpoint(filepath.Join(killed, "epoch_3.ckpt"))
	if err != nil {
		t.Fatal(err)
	}
	if len(a.Tensors) != len(b.Tensors) || len(a.Tensors) < 50 {
		t.Fatalf("%d and %d tensors", len(a.Tensors), len(b.Tensors))
	}
	for name, ta := range a.Tensors {
		tb, ok := b.Tensors[name]
		if !ok || !reflect.DeepEqual(ta.Value(), tb.Value()) {
			t.Errorf("%s differs between the uninterrupted and the resumed run", name)
		}
	}
	if _, ok := b.Tensors["memory_bank.feature_bank"]; !ok {
		t.Error("the checkpoint lacks the memory bank")
	}
	if a.Meta.Metrics["random_init_knn_top1_k1"] != b.Meta.Metrics["random_init_knn_top1_k1"] {
		t.Error("the resumed run lost the random-init baseline")
	}
}

func TestNaNLossStops(t *testing.T) {
	dir := t.TempDir()
	_, err := train(t, dir, engine.Options{}, context.Background(),
		"optim_wrapper.optimizer.lr=1e30", "custom_hooks=[]")
	if err == nil || !strings.Contains(err.Error(), "the loss is") || !strings.Contains(err.Error(), "training stopped") {
		t.Fatalf("a diverging run ended with %v", err)
	}
}

func TestLoadFromTakesWeightsOnly(t *testing.T) {
	first := t.TempDir()
	if _, err := train(t, first, engine.Options{}, context.Background(), "train_cfg.max_epochs=1", "param_scheduler=[]", "custom_hooks=[]"); err != nil {
		t.Fatal(err)
	}
	ckpt := filepath.Join(first, "epoch_1.ckpt")
	saved, err := engine.LoadCheckpoint(ckpt)
	if err != nil {
		t.Fatal(err)
	}
	tree, cfg := tinyConfig(t, "load_from="+ckpt, "randomness.seed=99")
	r, err := engine.NewRunner(tree, cfg, engine.Options{WorkDir: t.TempDir(), Console: &strings.Builder{}})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	now, err := r.Checkpoint()
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"backbone.conv1.weight", "neck.fc.bias", "backbone.layer2.0.bn1.running_var", "memory_bank.feature_bank"} {
		if !reflect.DeepEqual(now.Tensors[name].Value(), saved.Tensors[name].Value()) {
			t.Errorf("%s was not loaded", name)
		}
	}
	if step := now.Tensors["optimizer.step"].Value(); step != int64(0) {
		t.Errorf("load_from restored the optimizer (step %v)", step)
	}
	if r.Epoch != 0 {
		t.Errorf("load_from restored the epoch (%d)", r.Epoch)
	}
}

// A Normalize at the end of the pipelines (mmselfsup 0.x's way) trains exactly as the same
// normalisation in model.data_preprocessor (1.x's): the batches stay uint8 and the model
// normalises them on the device either way.
func TestPipelineNormalizeIsTheDataPreprocessor(t *testing.T) {
	const norm = `{ type = "Normalize", mean = [128, 128, 128], std = [64, 64, 64], to_rgb = true }`
	pipelines := []string{
		"model.data_preprocessor={ _delete_ = true }",
		`train_dataloader.dataset.pipeline=[{ type = "RandomResizedCrop", size = 8, scale = [0.5, 1] }, { type = "RandomFlip", prob = 0.5 }, ` + norm + `]`,
		"val_dataloader.dataset.pipeline=[" + norm + "]",
		"train_cfg.max_epochs=1", "param_scheduler=[]",
	}
	oneX, zeroX := t.TempDir(), t.TempDir()
	if _, err := train(t, oneX, engine.Options{}, context.Background(), "train_cfg.max_epochs=1", "param_scheduler=[]"); err != nil {
		t.Fatal(err)
	}
	if _, err := train(t, zeroX, engine.Options{}, context.Background(), pipelines...); err != nil {
		t.Fatal(err)
	}
	a, err := engine.LoadCheckpoint(filepath.Join(oneX, "epoch_1.ckpt"))
	if err != nil {
		t.Fatal(err)
	}
	b, err := engine.LoadCheckpoint(filepath.Join(zeroX, "epoch_1.ckpt"))
	if err != nil {
		t.Fatal(err)
	}
	if len(a.Tensors) < 50 || len(a.Tensors) != len(b.Tensors) {
		t.Fatalf("%d and %d tensors", len(a.Tensors), len(b.Tensors))
	}
	for name, ta := range a.Tensors {
		if tb, ok := b.Tensors[name]; !ok || !reflect.DeepEqual(ta.Value(), tb.Value()) {
			t.Errorf("%s differs", name)
		}
	}
	if !reflect.DeepEqual(a.Meta.Metrics, b.Meta.Metrics) {
		t.Errorf("metrics %v and %v", a.Meta.Metrics, b.Meta.Metrics)
	}

	// Both at once, Normalize before a pixel transform, or a val pipeline that normalises
	// differently: refused.
	for _, c := range []struct {
		sets []string
		want string
	}{
		{pipelines[1:2], "model.data_preprocessor.mean is set"},
		{[]string{"model.data_preprocessor={ _delete_ = true }", "train_dataloader.dataset.pipeline=[" + norm + `, { type = "RandomFlip" }]`}, "RandomFlip after Normalize"},
		{append(pipelines[:2:2], `val_dataloader.dataset.pipeline=[{ type = "Normalize", mean = [0, 0, 0], std = [1, 1, 1] }]`), "differs from the train pipeline's"},
	} {
		tree, cfg := tinyConfig(t, append(c.sets, "train_cfg.max_epochs=1", "param_scheduler=[]")...)
		r, err := engine.NewRunner(tree, cfg, engine.Options{WorkDir: t.TempDir(), Console: &strings.Builder{}})
		if err == nil {
			err = r.Train(context.Background())
			r.Close()
		}
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%v: got %v, want an error with %q", c.sets, err, c.want)
		}
	}
}

package engine_test

import (
	"context"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	gctx "github.com/gomlx/gomlx/pkg/ml/context"

	"github.com/goselfsup/goselfsup/engine"
)

// dataParallel trains NPID in float64 for one epoch of 24 images, a global batch of 8 (three
// steps), on `devices` of the CPU engine's four virtual devices with 8/devices images each,
// and returns the runner and the loss of every step.
func dataParallel(t *testing.T, norm string, devices int, sets ...string) (*engine.Runner, []float64) {
	t.Helper()
	per := 8 / devices
	tree, cfg := testConfig(t, map[string]any{
		"backend":    "go:devices=4",
		"randomness": map[string]any{"seed": 5},
		"env_cfg":    map[string]any{"num_devices": devices, "dtype": "float64"},
		"model": map[string]any{
			"type": "NPID", "neg_num": 16,
			"data_preprocessor": map[string]any{"mean": []float64{128, 128, 128}, "std": []float64{64, 64, 64}},
			"backbone": map[string]any{"type": "ResNet_CIFAR", "depth": 18, "stage_blocks": []int{1, 1, 1, 1},
				"stem_channels": 4, "base_channels": 4, "norm_cfg": map[string]any{"type": norm}},
			"neck":        map[string]any{"type": "LinearNeck", "in_channels": 32, "out_channels": 16},
			"head":        map[string]any{"type": "ContrastiveHead", "temperature": 0.1, "loss": map[string]any{"type": "CrossEntropyLoss"}},
			"memory_bank": map[string]any{"type": "SimpleMemory", "length": 24, "feat_dim": 16},
		},
		"train_dataloader": map[string]any{
			"batch_size": per, "num_workers": 2, "drop_last": true,
			"sampler": map[string]any{"type": "DefaultSampler", "shuffle": true},
			"dataset": map[string]any{"type": "DemoShapes", "num_samples": 24, "size": 8, "seed": 1, "pipeline": []any{
				map[string]any{"type": "RandomResizedCrop", "size": 8, "scale": []float64{0.5, 1}},
				map[string]any{"type": "RandomFlip", "prob": 0.5},
			}},
		},
		"optim_wrapper": map[string]any{"optimizer": map[string]any{"type": "SGD", "lr": 0.03, "momentum": 0.9, "weight_decay": 5e-4}},
		"train_cfg":     map[string]any{"type": "EpochBasedTrainLoop", "max_epochs": 1},
	}, "data-parallel", sets...)
	var losses []float64
	record := recordLosses(&losses)
	r, err := engine.NewRunner(tree, cfg, engine.Options{WorkDir: filepath.Join(t.TempDir(), "run"), Console: &strings.Builder{},
		Hooks: []*engine.Hook{record}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(r.Close)
	if r.Devices != devices {
		t.Fatalf("the run has %d devices, want %d", r.Devices, devices)
	}
	if err := r.Train(context.Background()); err != nil {
		t.Fatal(err)
	}
	if len(losses) != 3 {
		t.Fatalf("%d steps, want 3", len(losses))
	}
	return r, losses
}

// TestDataParallelMatchesOneDevice: with SyncBN, a step on 2 devices x 4 images or 4 x 2 is
// the step on 1 device x 8 (float64, within 1e-9): the same global batch (the distributed
// sampler deals each step's images out among the devices), batch statistics over all
// devices, gradients averaged, the bank updated with every device's features and the same
// negatives drawn everywhere. It compares the losses and every variable: weights, momentum
// buffers, batch-norm running statistics, the memory bank.
func TestDataParallelMatchesOneDevice(t *testing.T) {
	one, want := dataParallel(t, "SyncBN", 1)
	for _, devices := range []int{2, 4} {
		t.Run(fmt.Sprintf("%dx%d", devices, 8/devices), func(t *testing.T) {
			r, losses := dataParallel(t, "SyncBN", devices)
			for i := range want {
				if math.Abs(losses[i]-want[i]) > 1e-9*math.Abs(want[i]) {
					t.Errorf("step %d: loss %.15g, on one device %.15g", i+1, losses[i], want[i])
				}
			}
			compareVariables(t, r, one, 1e-9, 3)
			identicalOnEveryDevice(t, r, func(string) bool { return false })
		})
	}
}

// TestPlainBatchNormIsPerDevice: with BN, each device normalises by its own images'
// statistics, so the steps differ from one device's, and each device keeps running
// statistics of its own batches; the run's value of them (checkpoints, evaluation) is
// device 0's, as DDP's broadcast buffers. Everything else stays identical on every device.
func TestPlainBatchNormIsPerDevice(t *testing.T) {
	_, one := dataParallel(t, "BN", 1)
	r, two := dataParallel(t, "BN", 2)
	if math.Abs(one[0]-two[0]) < 1e-6*math.Abs(one[0]) {
		t.Errorf("the first loss is %.15g on 1 device x 8 and %.15g on 2 x 4 with per-device statistics", one[0], two[0])
	}
	running := func(name string) bool {
		return strings.HasSuffix(name, "running_mean") || strings.HasSuffix(name, "running_var")
	}
	identicalOnEveryDevice(t, r, running)
	stats := 0
	r.Ctx.EnumerateVariables(func(v *gctx.Variable) {
		if !running(v.ScopeAndName()) {
			return
		}
		d, err := v.DistributedValue()
		if err != nil {
			t.Fatal(err)
		}
		shards := d.Shards()
		if reflect.DeepEqual(shards[0].Value(), shards[1].Value()) {
			t.Errorf("%s is the same on both devices, which normalised different images", v.ScopeAndName())
		}
		if !reflect.DeepEqual(v.MustValue().Value(), shards[0].Value()) {
			t.Errorf("%s: the run's value is not device 0's", v.ScopeAndName())
		}
		stats++
	})
	if stats < 10 {
		t.Fatalf("checked %d running statistics", stats)
	}
}

// identicalOnEveryDevice checks that every variable of a data-parallel run (but those that
// skip names) holds the same bits on every device.
func identicalOnEveryDevice(t *testing.T, r *engine.Runner, skip func(name string) bool) {
	t.Helper()
	n := 0
	r.Ctx.EnumerateVariables(func(v *gctx.Variable) {
		if skip(v.ScopeAndName()) {
			return
		}
		d, err := v.DistributedValue()
		if err != nil {
			t.Errorf("%s: %v", v.ScopeAndName(), err)
			return
		}
		shards := d.Shards()
		if len(shards) != r.Devices {
			t.Errorf("%s has %d shards on %d devices", v.ScopeAndName(), len(shards), r.Devices)
			return
		}
		for i, s := range shards[1:] {
			if !reflect.DeepEqual(s.Value(), shards[0].Value()) {
				t.Errorf("%s differs between devices 0 and %d", v.ScopeAndName(), i+1)
			}
		}
		n++
	})
	if n < 20 {
		t.Fatalf("checked only %d variables", n)
	}
}

// TestResumeOnTwoDevicesMatchesUninterruptedRun kills a run on two virtual devices and
// resumes it: the checkpoints at the end are bit for bit those of the run that was not
// interrupted. The run resumes on one device with the same global batch, and refuses
// another global batch.
func TestResumeOnTwoDevicesMatchesUninterruptedRun(t *testing.T) {
	twoDevices := []string{`backend="go:devices=2"`, "train_dataloader.batch_size=8", "custom_hooks=[]"}
	whole := t.TempDir()
	if _, err := train(t, whole, engine.Options{}, context.Background(), twoDevices...); err != nil {
		t.Fatal(err)
	}
	killed := t.TempDir()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	_, err := train(t, killed, engine.Options{Hooks: []*engine.Hook{cancelAt(2, 1, cancel)}}, ctx, twoDevices...)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("the killed run ended with %v", err)
	}
	r, err := train(t, killed, engine.Options{Resume: "auto"}, context.Background(), twoDevices...)
	if err != nil {
		t.Fatal(err)
	}
	if !r.Resumed() || r.Devices != 2 {
		t.Fatalf("resumed %v on %d devices", r.Resumed(), r.Devices)
	}
	a, err := engine.LoadCheckpoint(filepath.Join(whole, "epoch_3.ckpt"))
	if err != nil {
		t.Fatal(err)
	}
	b, err := engine.LoadCheckpoint(filepath.Join(killed, "epoch_3.ckpt"))
	if err != nil {
		t.Fatal(err)
	}
	if a.Meta.Devices != 2 || a.Meta.BatchSize != 8 {
		t.Errorf("the checkpoint records %d devices x %d images, want 2 x 8", a.Meta.Devices, a.Meta.BatchSize)
	}
	if len(a.Tensors) != len(b.Tensors) || len(a.Tensors) < 50 {
		t.Fatalf("%d and %d tensors", len(a.Tensors), len(b.Tensors))
	}
	for name, ta := range a.Tensors {
		if tb, ok := b.Tensors[name]; !ok || !reflect.DeepEqual(ta.Value(), tb.Value()) {
			t.Errorf("%s differs between the uninterrupted and the resumed run", name)
		}
	}

	// Another device count with the same global batch resumes; another global batch does not.
	epoch2 := filepath.Join(whole, "epoch_2.ckpt")
	if _, err := os.Stat(epoch2); err != nil {
		t.Fatal(err)
	}
	r, err = train(t, t.TempDir(), engine.Options{Resume: epoch2}, context.Background(),
		`backend="go"`, "train_dataloader.batch_size=16", "custom_hooks=[]")
	if err != nil || r.Devices != 1 || r.Epoch != 3 {
		t.Errorf("resuming 2 x 8 on 1 x 16: %v (%d devices, epoch %d)", err, r.Devices, r.Epoch)
	}
	tree, cfg := tinyConfig(t, `backend="go"`, "train_dataloader.batch_size=8", "custom_hooks=[]")
	_, err = engine.NewRunner(tree, cfg, engine.Options{WorkDir: t.TempDir(), Resume: epoch2, Console: &strings.Builder{}})
	if err == nil || !strings.Contains(err.Error(), "a global batch of 16") || !strings.Contains(err.Error(), "1 x 8 = 8") {
		t.Errorf("resuming 2 x 8 on 1 x 8: %v, want an error that names both global batches", err)
	}
}

// TestAutoScaleLR: auto_scale_lr.enable scales the learning rate by the global batch over
// base_batch_size (2 devices x 8 images over 64: a quarter).
func TestAutoScaleLR(t *testing.T) {
	tree, cfg := tinyConfig(t, `backend="go:devices=2"`, "train_dataloader.batch_size=8",
		"auto_scale_lr.enable=true", "auto_scale_lr.base_batch_size=64")
	r, err := engine.NewRunner(tree, cfg, engine.Options{WorkDir: t.TempDir(), Console: &strings.Builder{}})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if got, want := r.Sched.LR(0, 0), 0.03*16/64; math.Abs(got-want) > 1e-15 {
		t.Errorf("lr %g, want %g", got, want)
	}
	tree, cfg = tinyConfig(t)
	tree.Set("auto_scale_lr.enable=true")
	if err := tree.Decode(cfg); err == nil || !strings.Contains(err.Error(), "base_batch_size") {
		t.Errorf("enable without base_batch_size: %v", err)
	}
}

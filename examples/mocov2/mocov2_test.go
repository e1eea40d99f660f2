package mocov2_test

import (
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gomlx/gomlx/pkg/core/dtypes"
	. "github.com/gomlx/gomlx/pkg/core/graph"
	"github.com/gomlx/gomlx/pkg/core/tensors"
	"github.com/gomlx/gomlx/pkg/ml/context"

	"github.com/goselfsup/goselfsup/cli" // the entry points, and the built-in components
	"github.com/goselfsup/goselfsup/engine"
	"github.com/goselfsup/goselfsup/engine/backend"
	"github.com/goselfsup/goselfsup/examples/mocov2"
	"github.com/goselfsup/goselfsup/models"
	"github.com/goselfsup/goselfsup/models/nn"
	"github.com/goselfsup/goselfsup/registry"
)

// run runs a goselfsup command as this example's command does, through cli.Main.
func run(args ...string) (int, string, string) {
	var out, errOut strings.Builder
	code := cli.Main(args, &out, &errOut)
	return code, out.String(), errOut.String()
}

// The example trains and evaluates through goselfsup's own entry points, as its command
// does: a few iterations of the example config on 64 images, then the NearestCentroid
// benchmark on the checkpoint that the work_dir's last_checkpoint names.
func TestTrainAndEvaluateThroughTheCLI(t *testing.T) {
	work := t.TempDir()
	code, out, errOut := run("train", "configs/mocov2_shapes.toml", "--work-dir", work,
		"--set", "train_dataloader.dataset.num_samples=64",
		"--set", "train_dataloader.batch_size=32",
		"--set", "val_dataloader.dataset.num_samples=32",
		"--set", "train_cfg.max_epochs=2",
		"--set", "model.queue_len=96",
		"--set", `param_scheduler=[{type = "LinearLR", start_factor = 0.5, by_epoch = false, end = 2}, {type = "PolyLR", begin = 1, end = 2, convert_to_iter_based = true}]`,
		"--set", "custom_hooks.1.interval=1")
	if code != 0 {
		t.Fatalf("train: exit %d\n%s\n%s", code, out, errOut)
	}
	// The final table: the KNNHook's accuracies, trained and at random init.
	if !strings.Contains(out, "trained  random init") || !strings.Contains(out, "knn_top1_k10 ") {
		t.Errorf("the KNNHook's results are not in the output:\n%s", out)
	}
	logs, _ := filepath.Glob(filepath.Join(work, "*", "log.jsonl"))
	if len(logs) != 1 {
		t.Fatalf("run logs %v", logs)
	}
	log, err := os.ReadFile(logs[0])
	if err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(string(log), "key encoder momentum"); n != 4 {
		t.Errorf("the momentum was logged %d times in 4 iterations", n)
	}
	last, err := os.ReadFile(filepath.Join(work, "last_checkpoint"))
	if err != nil {
		t.Fatal(err)
	}
	ckpt := strings.TrimSpace(string(last))

	evalDir := filepath.Join(work, "eval")
	code, out, errOut = run("evaluate", "configs/nearest_centroid_shapes.toml", ckpt, "--work-dir", evalDir,
		"--set", "train_dataloader.dataset.num_samples=64", "--set", "val_dataloader.dataset.num_samples=32")
	if code != 0 {
		t.Fatalf("evaluate: exit %d\n%s\n%s", code, out, errOut)
	}
	if !strings.Contains(out, "nearest centroid (backbone, 10 classes): top-1") {
		t.Errorf("evaluate's output:\n%s", out)
	}
	data, err := os.ReadFile(filepath.Join(evalDir, "metrics.json"))
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(data, &m); err != nil {
		t.Fatal(err)
	}
	if v, ok := m["centroid_top1"].(float64); !ok || v < 0 || v > 100 || m["evaluator"] != "NearestCentroid" || m["test"] != 32.0 {
		t.Errorf("metrics.json: %v", m)
	}
}

// tinyMoCo builds MoCoV2 with a ResNet two channels wide on 8x8 images, a queue of 6 keys
// of 4 dimensions, and SGD.
func tinyMoCo(t *testing.T) (*mocov2.MoCoV2, engine.OptimWrapper, *context.Context) {
	t.Helper()
	ctx := context.New()
	env := registry.With(nil, nn.NewScope(ctx, 3))
	m, err := registry.Build[engine.Algorithm](env, registry.NewSpec(registry.Algorithms, "MoCoV2", map[string]any{
		"queue_len": 6, "feat_dim": 4, "momentum": 0.25,
		"backbone": map[string]any{"type": "ResNet_CIFAR", "depth": 18, "stage_blocks": []any{1, 1, 1, 1},
			"stem_channels": 2, "base_channels": 2},
		"neck": map[string]any{"type": "MoCoV2Neck", "in_channels": 16, "hid_channels": 8, "out_channels": 4},
		"head": map[string]any{"type": "ContrastiveHead", "temperature": 0.2, "loss": map[string]any{"type": "CrossEntropyLoss"}},
	}))
	if err != nil {
		t.Fatal(err)
	}
	opt, err := registry.Build[engine.OptimWrapper](env, registry.NewSpec(registry.OptimWrappers, "OptimWrapper", map[string]any{
		"optimizer": map[string]any{"type": "SGD", "lr": 0.5, "momentum": 0.9}}))
	if err != nil {
		t.Fatal(err)
	}
	if err := ctx.SetRNGStateFromSeed(5); err != nil {
		t.Fatal(err)
	}
	return m.(*mocov2.MoCoV2), opt, ctx
}

func values(t *testing.T, ctx *context.Context) map[string][]float64 {
	t.Helper()
	out := map[string][]float64{}
	for v := range ctx.IterVariables() {
		tv := v.MustValue()
		switch tv.DType() {
		case dtypes.Float32:
			f := tensors.MustCopyFlatData[float32](tv)
			d := make([]float64, len(f))
			for i, x := range f {
				d[i] = float64(x)
			}
			out[nn.TorchName(v)] = d
		case dtypes.Int64:
			out[nn.TorchName(v)] = []float64{float64(tensors.MustCopyFlatData[int64](tv)[0])}
		}
	}
	return out
}

// The key encoder starts as a copy of the query encoder, follows it by
// (1 - momentum) key + momentum query before computing the keys, copies its buffers, and the
// keys fill the queue in FIFO order from queue_ptr, wrapping around.
func TestMomentumEncoderAndQueue(t *testing.T) {
	m, opt, ctx := tinyMoCo(t)
	bk, err := backend.New("go")
	if err != nil {
		t.Fatal(err)
	}
	v0 := values(t, ctx)
	pairs := 0
	for name, val := range v0 {
		key, ok := strings.CutPrefix(name, "momentum_encoder.module.0.")
		if !ok {
			continue
		}
		pairs++
		q := v0["backbone."+key]
		for i := range val {
			if val[i] != q[i] {
				t.Fatalf("%s does not start as a copy of backbone.%s", name, key)
			}
		}
	}
	if pairs == 0 || v0["momentum_encoder.module.1.mlp.2.weight"] == nil {
		t.Fatalf("no key encoder among %d variables", len(v0))
	}
	for v := range ctx.IterVariables() {
		if strings.HasPrefix(nn.TorchName(v), "momentum_encoder.") && v.Trainable {
			t.Errorf("%s is trainable", nn.TorchName(v))
		}
	}

	step := context.MustNewExec(bk, ctx, func(ctx *context.Context, images, lr *Node) *Node {
		return engine.Step(ctx, m, opt, models.Batch{Images: images}, lr)
	})
	images := make([]uint8, 4*8*8*3)
	for i := range images {
		images[i] = uint8(i * 37 % 251)
	}
	batch := tensors.FromFlatDataAndDimensions(images, 4, 8, 8, 3)
	for i := 1; i <= 2; i++ {
		before := values(t, ctx)
		out, err := step.Exec(batch, 0.1)
		if err != nil {
			t.Fatal(err)
		}
		if loss := float64(out[0].Value().(float32)); !(loss > 0) || math.IsInf(loss, 0) {
			t.Fatalf("step %d: loss %v", i, loss)
		}
		after := values(t, ctx)
		// Parameters: the moving average of the pre-step values.
		for _, name := range []string{"neck.mlp.0.weight", "backbone.conv1.weight", "backbone.bn1.bias"} {
			key := "momentum_encoder.module.1." + strings.TrimPrefix(name, "neck.")
			if strings.HasPrefix(name, "backbone.") {
				key = "momentum_encoder.module.0." + strings.TrimPrefix(name, "backbone.")
			}
			for j, k := range after[key] {
				want := 0.75*before[key][j] + 0.25*before[name][j]
				if math.Abs(k-want) > 1e-6 {
					t.Fatalf("step %d: %s[%d] = %v, want 0.75 * %v + 0.25 * %v", i, key, j, k, before[key][j], before[name][j])
				}
			}
			if i == 2 && after[name][0] == before[name][0] {
				t.Errorf("step %d: the optimizer left %s unchanged", i, name)
			}
		}
		// Buffers: copied from the query encoder after its forward pass, then counted once
		// more by the key encoder's own forward pass.
		if got, want := after["momentum_encoder.module.0.bn1.num_batches_tracked"][0], after["backbone.bn1.num_batches_tracked"][0]+1; got != want {
			t.Errorf("step %d: the key encoder's num_batches_tracked = %v, want %v", i, got, want)
		}
		// The queue: 4 keys from queue_ptr, modulo 6.
		ptr := int(before["queue_ptr"][0])
		if got := int(after["queue_ptr"][0]); got != (ptr+4)%6 {
			t.Errorf("step %d: queue_ptr %d -> %d, want %d", i, ptr, got, (ptr+4)%6)
		}
		for row := range 6 {
			fresh := (row-ptr+6)%6 < 4
			old, now := before["queue"][row*4:(row+1)*4], after["queue"][row*4:(row+1)*4]
			var norm, diff float64
			for j := range now {
				norm += now[j] * now[j]
				diff += math.Abs(now[j] - old[j])
			}
			if math.Abs(norm-1) > 1e-5 {
				t.Errorf("step %d: queue row %d has norm² %v", i, row, norm)
			}
			if fresh != (diff > 0) {
				t.Errorf("step %d: queue row %d changed: %v, want %v (ptr %d)", i, row, diff > 0, fresh, ptr)
			}
		}
	}
	// SetMomentum changes the next steps' momentum.
	if err := m.SetMomentum(0.5); err != nil {
		t.Fatal(err)
	}
	if got := values(t, ctx)["momentum_encoder.momentum"][0]; got != 0.5 || m.BaseMomentum() != 0.25 {
		t.Errorf("momentum %v after SetMomentum(0.5), base %v", got, m.BaseMomentum())
	}
}

// A view with the whole image and no flip is the image; with flip_prob 1 it is the mirror
// image; a crop of a quarter of the area samples a contiguous block of the same image; with
// gray_prob 1 the three channels are equal.
func TestViews(t *testing.T) {
	bk, err := backend.New("go")
	if err != nil {
		t.Fatal(err)
	}
	const n, size = 3, 8
	images := make([]uint8, n*size*size*3)
	for b := range n {
		for y := range size {
			for x := range size {
				p := ((b*size+y)*size + x) * 3
				images[p], images[p+1], images[p+2] = uint8(b), uint8(y), uint8(x)
			}
		}
	}
	view := func(v mocov2.ViewsConfig) []uint8 {
		ctx := context.New()
		if err := ctx.SetRNGStateFromSeed(11); err != nil {
			t.Fatal(err)
		}
		out := context.MustExecOnce(bk, ctx, func(ctx *context.Context, x *Node) *Node { return v.Apply(ctx, x) },
			tensors.FromFlatDataAndDimensions(images, n, size, size, 3))
		return tensors.MustCopyFlatData[uint8](out)
	}
	at := func(img []uint8, b, y, x, c int) int { return int(img[((b*size+y)*size+x)*3+c]) }

	id := view(mocov2.ViewsConfig{Scale: [2]float64{1, 1}, Ratio: [2]float64{1, 1}})
	flip := view(mocov2.ViewsConfig{Scale: [2]float64{1, 1}, Ratio: [2]float64{1, 1}, FlipProb: 1})
	crop := view(mocov2.ViewsConfig{Scale: [2]float64{0.25, 0.25}, Ratio: [2]float64{1, 1}})
	gray := view(mocov2.ViewsConfig{Scale: [2]float64{1, 1}, Ratio: [2]float64{1, 1}, ColorJitter: [3]float64{0.4, 0.4, 0.4}, GrayProb: 1})
	for p := 0; p < len(gray); p += 3 {
		if gray[p] != gray[p+1] || gray[p] != gray[p+2] {
			t.Fatalf("pixel %d of the grayscale view is %v", p/3, gray[p:p+3])
		}
	}
	for b := range n {
		for y := range size {
			for x := range size {
				if at(id, b, y, x, 0) != b || at(id, b, y, x, 1) != y || at(id, b, y, x, 2) != x {
					t.Fatalf("the identity view moved pixel (%d, %d, %d)", b, y, x)
				}
				if at(flip, b, y, x, 0) != b || at(flip, b, y, x, 1) != y || at(flip, b, y, x, 2) != size-1-x {
					t.Fatalf("the flipped view's pixel (%d, %d, %d) is (%d, %d)", b, y, x, at(flip, b, y, x, 1), at(flip, b, y, x, 2))
				}
			}
		}
		// Half the side: the view samples rows r_0 <= ... <= r_7 and columns c_0 <= ... <= c_7
		// of the same image, each a step of 0 or 1 from the last, spanning 4 or 5 pixels.
		rows, cols := make([]int, size), make([]int, size)
		for i := range size {
			rows[i], cols[i] = at(crop, b, i, 0, 1), at(crop, b, 0, i, 2)
		}
		for _, s := range [][]int{rows, cols} {
			for i := 1; i < size; i++ {
				if d := s[i] - s[i-1]; d != 0 && d != 1 {
					t.Fatalf("image %d: the crop samples %v, not a contiguous block", b, s)
				}
			}
			if span := s[size-1] - s[0]; span != 3 && span != 4 {
				t.Fatalf("image %d: the crop samples %v, not half the side", b, s)
			}
		}
		for y := range size {
			for x := range size {
				if at(crop, b, y, x, 0) != b || at(crop, b, y, x, 1) != rows[y] || at(crop, b, y, x, 2) != cols[x] {
					t.Fatalf("image %d: the crop's pixel (%d, %d) is not from row %d and column %d", b, y, x, rows[y], cols[x])
				}
			}
		}
	}
}

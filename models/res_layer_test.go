package models_test

import (
	"math/rand/v2"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gomlx/gomlx/pkg/core/dtypes"
	. "github.com/gomlx/gomlx/pkg/core/graph"
	"github.com/gomlx/gomlx/pkg/ml/context"

	"github.com/goselfsup/goselfsup/models"
	"github.com/goselfsup/goselfsup/models/nn"
	"github.com/goselfsup/goselfsup/registry"
)

// The C4 shared heads against torchvision's resnet50().layer4 (and BatchNorm2d(2048) for
// ResLayerExtraNorm) in float64: eval and train outputs, the gradients of the input and of
// every parameter, and the batch-norm buffers after the train-mode pass.
func TestResLayerMatchesTorchvision(t *testing.T) {
	python := segPython(t)
	if _, err := exec.Command(python, "-c", "import torchvision").CombinedOutput(); err != nil {
		t.Skip("no torchvision")
	}
	for _, typ := range []string{"ResLayerExtraNorm", "ResLayer"} {
		t.Run(typ, func(t *testing.T) {
			dir := t.TempDir()
			ctx := context.New()
			scope := nn.NewScope(ctx, 11).WithDType(dtypes.Float64)
			head, err := registry.Build[*models.ResLayer](registry.With(nil, scope), registry.NewSpec(registry.SharedHeads, typ,
				map[string]any{"depth": 50, "stage": 3, "stride": 2}))
			if err != nil {
				t.Fatal(err)
			}
			if head.InChannels() != 1024 || head.OutChannels() != 2048 || head.PretrainedPrefix() != "backbone.layer4." {
				t.Fatalf("channels %d -> %d, prefix %q", head.InChannels(), head.OutChannels(), head.PretrainedPrefix())
			}
			params, buffers := writeTorchState(t, ctx, filepath.Join(dir, "state"), func(string) bool { return true })
			hasNorm := false
			for _, p := range params {
				hasNorm = hasNorm || strings.HasPrefix(p.name, "norm.")
			}
			if hasNorm != (typ == "ResLayerExtraNorm") {
				t.Fatalf("%s: extra norm %v", typ, hasNorm)
			}
			rng := rand.New(rand.NewPCG(3, 4))
			x, r := randTensor(rng, 2, 10, 10, 1024), randTensor(rng, 2, 5, 5, 2048) // 14x14 RoI features in the benchmark
			writeNPY(t, filepath.Join(dir, "x.npy"), x)
			writeNPY(t, filepath.Join(dir, "r.npy"), r)
			args := []string{filepath.Join("..", "benchmarks", "res_layer_reference.py"), dir}
			if typ == "ResLayerExtraNorm" {
				args = append(args, "extra_norm")
			}
			if out, err := exec.Command(python, args...).CombinedOutput(); err != nil {
				t.Fatalf("res_layer_reference.py: %v\n%s", err, out)
			}

			b := pureGo(t)
			eval := context.MustExecOnce(b, ctx, func(ctx *context.Context, x *Node) *Node { return head.Forward(x, false) }, x)
			if d := relDiff(t, eval, readNPY(t, filepath.Join(dir, "eval.npy"))); d > 1e-9 {
				t.Errorf("eval output differs by %.2g", d)
			}
			outs := context.MustExecOnceN(b, ctx, func(ctx *context.Context, x, r *Node) []*Node {
				y := head.Forward(x, true)
				loss := ReduceAllSum(Mul(y, r))
				nodes := []*Node{x}
				for _, p := range params {
					nodes = append(nodes, p.v.ValueGraph(x.Graph()))
				}
				return append([]*Node{y}, Gradient(loss, nodes...)...)
			}, x, r)
			worst := 0.0
			for i, c := range []struct{ what, file string }{{"train output", "train.npy"}, {"input gradient", "gx.npy"}} {
				d := relDiff(t, outs[i], readNPY(t, filepath.Join(dir, c.file)))
				worst = max(worst, d)
				if d > 1e-9 {
					t.Errorf("%s differs by %.2g", c.what, d)
				}
			}
			worst = max(worst, checkTorchGrads(t, dir, params, buffers, outs[2:], 1e-9))
			t.Logf("%d parameters, %d buffers: largest relative difference %.2g", len(params), len(buffers), worst)
		})
	}
}

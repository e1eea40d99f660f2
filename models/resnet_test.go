package models_test

import (
	"testing"

	. "github.com/gomlx/gomlx/pkg/core/graph"
	"github.com/gomlx/gomlx/pkg/core/tensors"
	"github.com/gomlx/gomlx/pkg/ml/context"

	"github.com/goselfsup/goselfsup/engine/backend"
	"github.com/goselfsup/goselfsup/models"
	"github.com/goselfsup/goselfsup/models/nn"
	"github.com/goselfsup/goselfsup/registry"
)

func buildBackbone(t *testing.T, typ string, table map[string]any) (models.Backbone, *context.Context) {
	t.Helper()
	ctx := context.New()
	env := registry.With(nil, nn.NewScope(ctx, 1))
	bb, err := registry.Build[models.Backbone](env, registry.NewSpec("backbones", typ, table))
	if err != nil {
		t.Fatal(err)
	}
	return bb, ctx
}

// countParams counts trainable values, as sum(p.numel() for p in model.parameters()).
func countParams(ctx *context.Context) int {
	n := 0
	for v := range ctx.IterVariables() {
		if v.Trainable {
			n += v.Shape().Size()
		}
	}
	return n
}

func TestResNetParameterCounts(t *testing.T) {
	// torchvision's counts without the fc layer: resnet18 11,689,512 - 513,000 and
	// resnet50 25,557,032 - 2,049,000; resnet34 21,797,672 - 513,000; resnet101
	// 44,549,160 - 2,049,000.
	for _, tc := range []struct {
		depth, want int
	}{{18, 11_176_512}, {34, 21_284_672}, {50, 23_508_032}, {101, 42_500_160}} {
		_, ctx := buildBackbone(t, "ResNet", map[string]any{"depth": tc.depth})
		if got := countParams(ctx); got != tc.want {
			t.Errorf("ResNet-%d: %d parameters, want %d", tc.depth, got, tc.want)
		}
	}
	ctx := context.New()
	env := registry.With(nil, nn.NewScope(ctx, 1))
	if _, err := registry.Build[models.Neck](env, registry.NewSpec("necks", "LinearNeck",
		map[string]any{"in_channels": 2048, "out_channels": 128})); err != nil {
		t.Fatal(err)
	}
	if got := countParams(ctx); got != 262_272 {
		t.Errorf("LinearNeck 2048->128: %d parameters, want 262,272", got)
	}
}

func TestResNetOutputShapes(t *testing.T) {
	b, err := backend.New("go")
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		typ   string
		table map[string]any
		in    int
		want  [][]int // per output: H, W, C
	}{
		{"ResNet", map[string]any{"depth": 50, "out_indices": []int{0, 1, 2, 3, 4}}, 64,
			[][]int{{32, 32, 64}, {16, 16, 256}, {8, 8, 512}, {4, 4, 1024}, {2, 2, 2048}}},
		{"ResNet", map[string]any{"depth": 18, "out_indices": []int{4}}, 64, [][]int{{2, 2, 512}}},
		{"ResNet_CIFAR", map[string]any{"depth": 18, "base_channels": 16, "stem_channels": 16, "out_indices": []int{0, 4}}, 32,
			[][]int{{32, 32, 16}, {4, 4, 128}}},
	} {
		bb, ctx := buildBackbone(t, tc.typ, tc.table)
		outs := context.MustExecOnceN(b, ctx, func(ctx *context.Context, x *Node) []*Node {
			return bb.Forward(x, false)
		}, tensors.FromShape(shapesF32(2, tc.in, tc.in, 3)))
		for i, o := range outs {
			d := o.Shape().Dimensions
			w := tc.want[i]
			if d[0] != 2 || d[1] != w[0] || d[2] != w[1] || d[3] != w[2] {
				t.Errorf("%s %v output %d: %v, want [2 %d %d %d]", tc.typ, tc.table, i, d, w[0], w[1], w[2])
			}
			if bb.OutChannels()[i] != w[2] {
				t.Errorf("%s: OutChannels()[%d] = %d, want %d", tc.typ, i, bb.OutChannels()[i], w[2])
			}
		}
	}
}

func TestResNetInitAndFreezing(t *testing.T) {
	_, ctx := buildBackbone(t, "ResNet", map[string]any{"depth": 50, "frozen_stages": 2, "zero_init_residual": true})
	byName := map[string]*context.Variable{}
	for v := range ctx.IterVariables() {
		byName[nn.TorchName(v)] = v
	}
	for name, trainable := range map[string]bool{
		"conv1.weight": false, "bn1.weight": false, "layer1.0.conv1.weight": false, "layer2.3.bn3.bias": false,
		"layer3.0.conv1.weight": true, "layer4.2.downsample.0.weight": false, "layer4.0.downsample.0.weight": true,
	} {
		v, ok := byName[name]
		if !ok {
			if name == "layer4.2.downsample.0.weight" {
				continue // only the first block of a stage has a downsample
			}
			t.Fatalf("no variable %s", name)
		}
		if v.Trainable != trainable {
			t.Errorf("%s trainable = %v, want %v", name, v.Trainable, trainable)
		}
	}
	// zero_init_residual: the last norm of every block starts at 0, the others at 1.
	if w := byName["layer3.1.bn3.weight"].MustValue().Value().([]float32); w[0] != 0 {
		t.Errorf("layer3.1.bn3.weight starts at %v, want 0", w[0])
	}
	if w := byName["layer3.1.bn2.weight"].MustValue().Value().([]float32); w[0] != 1 {
		t.Errorf("layer3.1.bn2.weight starts at %v, want 1", w[0])
	}
	// Kaiming normal, fan_out: the standard deviation of layer4.0.conv2 (3x3x512x512) is
	// sqrt(2 / (512 * 9)).
	w := byName["layer4.0.conv2.weight"].MustValue().Value().([][][][]float32)
	var sum, sq float64
	n := 0
	for _, a := range w {
		for _, b := range a {
			for _, c := range b {
				for _, v := range c {
					sum += float64(v)
					sq += float64(v) * float64(v)
					n++
				}
			}
		}
	}
	mean := sum / float64(n)
	std := sq/float64(n) - mean*mean
	want := 2.0 / (512 * 9)
	if std < want*0.98 || std > want*1.02 || mean > 1e-3 || mean < -1e-3 {
		t.Errorf("layer4.0.conv2.weight: mean %.2g, variance %.4g, want 0 and %.4g", mean, std, want)
	}
}

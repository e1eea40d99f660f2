package cli

import (
	"testing"

	"github.com/gomlx/gomlx/pkg/core/dtypes"
	. "github.com/gomlx/gomlx/pkg/core/graph"
	"github.com/gomlx/gomlx/pkg/core/shapes"
	"github.com/gomlx/gomlx/pkg/core/tensors"
	"github.com/gomlx/gomlx/pkg/ml/context"

	"github.com/goselfsup/goselfsup/engine"
	"github.com/goselfsup/goselfsup/engine/backend"
	"github.com/goselfsup/goselfsup/models/nn"
	"github.com/goselfsup/goselfsup/registry"
)

// The shipped linear-evaluation configs build their ResNet-50 classifiers, and a 224x224
// image gives one score per class from each head: one for the linear protocol, five
// (feature1..feature5, through mmselfsup's pooling table) for the multi-head ones.
func TestShippedLinearConfigsBuild(t *testing.T) {
	if testing.Short() {
		t.Skip("runs ResNet-50 at 224x224 on the CPU")
	}
	b, err := backend.New("go")
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		config         string
		heads, classes int
	}{
		{"configs/benchmarks/classification/imagenet/resnet50_linear-8xb32-steplr-100e_in1k.toml", 1, 1000},
		{"configs/benchmarks/classification/imagenet/resnet50_mhead_linear-8xb32-steplr-90e_in1k.toml", 5, 1000},
		{"configs/benchmarks/classification/places205/resnet50_mhead_8xb32-steplr-28e_places205.toml", 5, 205},
	} {
		_, cfg, err := LoadConfig(tc.config, nil)
		if err != nil {
			t.Fatal(err)
		}
		ctx := context.New()
		env := registry.With(&registry.Env{Registry: registry.Default}, nn.NewScope(ctx, 1))
		model, err := registry.Build[engine.Algorithm](env, cfg.Model)
		if err != nil {
			t.Fatalf("%s: %v", tc.config, err)
		}
		clf, ok := model.(engine.Classifier)
		if !ok {
			t.Fatalf("%s: %T is not a classifier", tc.config, model)
		}
		outs := context.MustExecOnceN(b, ctx, func(ctx *context.Context, x *Node) []*Node {
			return clf.Logits(x)
		}, tensors.FromShape(shapes.Make(dtypes.Uint8, 1, 224, 224, 3)))
		if len(outs) != tc.heads {
			t.Fatalf("%s: %d heads, want %d", tc.config, len(outs), tc.heads)
		}
		for i, o := range outs {
			if d := o.Shape().Dimensions; len(d) != 2 || d[0] != 1 || d[1] != tc.classes {
				t.Errorf("%s head %d: %v, want [1 %d]", tc.config, i+1, d, tc.classes)
			}
		}
	}
}

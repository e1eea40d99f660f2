package mocov2

import (
	"math"
	"testing"

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

// With shuffle_bn_groups = 2 the key encoder normalises samples {0, 2} and {1, 3} of a batch
// of 4 together and returns their outputs in the batch's order; the query encoder
// normalises {0, 1} and {2, 3}.
func TestShuffleBNGroups(t *testing.T) {
	ctx := context.New()
	env := registry.With(nil, nn.NewScope(ctx, 3))
	a, err := registry.Build[*MoCoV2](env, registry.NewSpec(registry.Algorithms, "MoCoV2", map[string]any{
		"queue_len": 8, "feat_dim": 4, "shuffle_bn_groups": 2,
		"backbone": map[string]any{"type": "ResNet_CIFAR", "depth": 18, "stage_blocks": []any{1, 1, 1, 1},
			"stem_channels": 2, "base_channels": 2},
		"neck": map[string]any{"type": "MoCoV2Neck", "in_channels": 16, "hid_channels": 8, "out_channels": 4},
		"head": map[string]any{"type": "ContrastiveHead", "temperature": 0.2, "loss": map[string]any{"type": "CrossEntropyLoss"}},
	}))
	if err != nil {
		t.Fatal(err)
	}
	bk, err := backend.New("go")
	if err != nil {
		t.Fatal(err)
	}
	data := make([]float32, 4*8*8*3)
	for i := range data {
		data[i] = float32(math.Sin(float64(i) * 0.37))
	}
	x := tensors.FromFlatDataAndDimensions(data, 4, 8, 8, 3)
	exec := context.MustNewExec(bk, ctx, func(ctx *context.Context, x *Node) []*Node {
		plain := func(b models.Backbone, n models.Neck, idx ...int32) *Node {
			return n.Forward(b.Forward(Gather(x, ExpandAxes(Const(x.Graph(), idx), -1)), true))
		}
		return []*Node{
			a.encode(a.keyBackbone, a.keyNeck, x, true), plain(a.keyBackbone, a.keyNeck, 0, 2), plain(a.keyBackbone, a.keyNeck, 1, 3),
			a.encode(a.backbone, a.neck, x, false), plain(a.backbone, a.neck, 0, 1), plain(a.backbone, a.neck, 2, 3),
		}
	})
	outs, err := exec.Exec(x)
	if err != nil {
		t.Fatal(err)
	}
	rows := func(t *tensors.Tensor) [][]float32 { return t.Value().([][]float32) }
	for _, c := range []struct {
		name        string
		got, g0, g1 [][]float32
		inG0, inG1  [2]int
	}{
		{"keys", rows(outs[0]), rows(outs[1]), rows(outs[2]), [2]int{0, 2}, [2]int{1, 3}},
		{"queries", rows(outs[3]), rows(outs[4]), rows(outs[5]), [2]int{0, 1}, [2]int{2, 3}},
	} {
		for k := range 2 {
			for j := range 4 {
				if math.Abs(float64(c.got[c.inG0[k]][j]-c.g0[k][j])) > 1e-5 || math.Abs(float64(c.got[c.inG1[k]][j]-c.g1[k][j])) > 1e-5 {
					t.Fatalf("%s: %v, want rows %v of %v and %v of %v", c.name, c.got, c.inG0, c.g0, c.inG1, c.g1)
				}
			}
		}
	}
}

package models_test

import (
	"math"
	"testing"

	. "github.com/gomlx/gomlx/pkg/core/graph"
	"github.com/gomlx/gomlx/pkg/core/tensors"
	"github.com/gomlx/gomlx/pkg/ml/context"

	"github.com/goselfsup/goselfsup/engine/backend"
	"github.com/goselfsup/goselfsup/models"
)

// iota4 is an NHWC map [1, h, w, 1] holding 0, 1, 2, ... in row-major order.
func iota4(h, w int) *tensors.Tensor {
	v := make([]float32, h*w)
	for i := range v {
		v[i] = float32(i)
	}
	return tensors.FromFlatDataAndDimensions(v, 1, h, w, 1)
}

func closeAll(t *testing.T, what string, got, want []float32) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: %d values, want %d", what, len(got), len(want))
	}
	for i := range got {
		if math.Abs(float64(got[i]-want[i])) > 1e-5 {
			t.Errorf("%s: value %d = %g, want %g (all: %v)", what, i, got[i], want[i], got)
			return
		}
	}
}

func TestAvgPoolings(t *testing.T) {
	b, err := backend.New("go")
	if err != nil {
		t.Fatal(err)
	}
	// PyTorch's AvgPool2d(3, stride=2, padding=1) on 0..15 as a 4x4 map counts the zero
	// padding (count_include_pad): the windows' sums 0+1+4+5, 1+2+3+5+6+7,
	// 4+5+8+9+12+13 and 5+6+7+9+10+11+13+14+15, each over 9.
	got := MustExecOnce(b, func(x *Node) *Node { return models.AvgPool2d(x, 3, 2, 1) }, iota4(4, 4))
	closeAll(t, "AvgPool2d", tensors.MustCopyFlatData[float32](got), []float32{10. / 9, 24. / 9, 51. / 9, 90. / 9})

	// AdaptiveAvgPool2d(3) on a 5x5 map: rows and columns [0, 2), [1, 4), [3, 5).
	got = MustExecOnce(b, func(x *Node) *Node { return models.AdaptiveAvgPool2d(x, 3, 3) }, iota4(5, 5))
	closeAll(t, "AdaptiveAvgPool2d", tensors.MustCopyFlatData[float32](got),
		[]float32{3, 4.5, 6, 10.5, 12, 13.5, 18, 19.5, 21})

	// FlattenNCHW orders by channel, then row, then column: an NHWC map [1, 2, 1, 2] holding
	// (c0, c1) = (0, 1) on row 0 and (2, 3) on row 1 flattens as 0, 2, 1, 3.
	x := tensors.FromFlatDataAndDimensions([]float32{0, 1, 2, 3}, 1, 2, 1, 2)
	got = MustExecOnce(b, models.FlattenNCHW, x)
	closeAll(t, "FlattenNCHW", tensors.MustCopyFlatData[float32](got), []float32{0, 2, 1, 3})
}

// TestMultiPoolingSizes runs ResNet-50 and ResNet-18 on a 224x224 image and pools their five
// outputs with the "specified" tables: mmselfsup's POOL_DIMS for ResNet-50.
func TestMultiPoolingSizes(t *testing.T) {
	if testing.Short() {
		t.Skip("runs ResNet-50 at 224x224 on the CPU")
	}
	b, err := backend.New("go")
	if err != nil {
		t.Fatal(err)
	}
	want := []int{9216, 9216, 8192, 9216, 8192}
	for _, depth := range []int{50, 18} {
		bb, ctx := buildBackbone(t, "ResNet", map[string]any{"depth": depth})
		pool, err := models.NewMultiPooling("specified", map[int]string{50: "resnet50", 18: "resnet18"}[depth], []int{0, 1, 2, 3, 4})
		if err != nil {
			t.Fatal(err)
		}
		outs := context.MustExecOnceN(b, ctx, func(ctx *context.Context, x *Node) []*Node {
			return pool.Forward(bb.(*models.ResNet).AllOutputs(x, false))
		}, tensors.FromShape(shapesF32(1, 224, 224, 3)))
		for i, o := range outs {
			if d := o.Shape().Dimensions; len(d) != 2 || d[0] != 1 || d[1] != want[i] {
				t.Errorf("ResNet-%d feature%d: shape %v, want [1 %d]", depth, i+1, d, want[i])
			}
		}
	}
}

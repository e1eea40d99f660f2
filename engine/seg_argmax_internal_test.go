package engine

import (
	"math/rand/v2"
	"testing"

	"github.com/gomlx/gomlx/pkg/core/dtypes"
	. "github.com/gomlx/gomlx/pkg/core/graph"
	"github.com/gomlx/gomlx/pkg/core/tensors"

	"github.com/goselfsup/goselfsup/engine/backend"
	"github.com/goselfsup/goselfsup/models/nn"
)

// segArgmax is the argmax of nn.Resize's bilinear resize (align_corners=False), up and
// down, computed on the CPU.
func TestSegArgmaxIsTheArgmaxOfResize(t *testing.T) {
	b, err := backend.New("go")
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(1, 2))
	for _, c := range []struct{ h, w, classes, height, width int }{{5, 7, 4, 13, 9}, {9, 6, 3, 4, 5}, {4, 4, 2, 4, 4}, {1, 3, 5, 6, 2}} {
		logits := make([]float32, c.h*c.w*c.classes)
		for i := range logits {
			logits[i] = rng.Float32()*4 - 2
		}
		out := MustExecOnce(b, func(x *Node) *Node {
			return ArgMax(nn.Resize(x, c.height, c.width), -1, dtypes.Int32)
		}, tensors.FromFlatDataAndDimensions(logits, 1, c.h, c.w, c.classes))
		want := tensors.MustCopyFlatData[int32](out)
		got := make([]int32, c.height*c.width)
		segArgmax(logits, c.h, c.w, c.classes, c.height, c.width, got)
		diff := 0
		for i := range got {
			if got[i] != want[i] {
				diff++
			}
		}
		if diff > 0 {
			t.Errorf("%+v: %d of %d pixels differ", c, diff, len(got))
		}
	}
}

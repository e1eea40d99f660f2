package backend

import (
	"slices"
	"testing"

	"github.com/gomlx/gomlx/pkg/core/dtypes"
	. "github.com/gomlx/gomlx/pkg/core/graph"
	"github.com/gomlx/gomlx/pkg/core/tensors"
)

// TestDynamicSlice checks the lowered DynamicSlice, DynamicUpdateSlice and the gradient of
// DynamicSlice (a DynamicUpdateSlice) against values worked out by hand, starts clamped
// into the operand as in XLA.
func TestDynamicSlice(t *testing.T) {
	x := []float32{0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11} // [3, 4]
	for _, config := range []string{"go", "go:kernels=off"} {
		b := newBackend(t, config)
		e := MustNewExec(b, func(x, i, j *Node) []*Node {
			x = Reshape(x, 3, 4)
			s := DynamicSlice(x, []*Node{i, j}, []int{2, 2})
			u := DynamicUpdateSlice(x, Neg(Ones(x.Graph(), s.Shape())), []*Node{i, j})
			grad := Gradient(ReduceAllSum(Mul(s, s)), x)[0]
			return []*Node{s, u, grad}
		})
		for _, tc := range []struct {
			i, j       int32
			slice      []float32
			update     []float32
			gradSlices []float32
		}{
			{1, 1, []float32{5, 6, 9, 10}, []float32{0, 1, 2, 3, 4, -1, -1, 7, 8, -1, -1, 11},
				[]float32{0, 0, 0, 0, 0, 10, 12, 0, 0, 18, 20, 0}},
			{0, 2, []float32{2, 3, 6, 7}, []float32{0, 1, -1, -1, 4, 5, -1, -1, 8, 9, 10, 11},
				[]float32{0, 0, 4, 6, 0, 0, 12, 14, 0, 0, 0, 0}},
			// Clamped: (5, -3) -> (1, 0).
			{5, -3, []float32{4, 5, 8, 9}, []float32{0, 1, 2, 3, -1, -1, 6, 7, -1, -1, 10, 11},
				[]float32{0, 0, 0, 0, 8, 10, 0, 0, 16, 18, 0, 0}},
		} {
			outs := e.MustExec(x, tc.i, tc.j)
			for k, want := range [][]float32{tc.slice, tc.update, tc.gradSlices} {
				if got := tensors.MustCopyFlatData[float32](outs[k]); !slices.Equal(got, want) {
					t.Errorf("%s, start (%d, %d), output %d: got %v, want %v", config, tc.i, tc.j, k, got, want)
				}
			}
		}
		// Integer values and int64 starts.
		ei := MustNewExec(b, func(x, i *Node) *Node {
			return DynamicSlice(x, []*Node{i}, []int{2})
		})
		got := ei.MustExec([]int64{7, 8, 9}, int64(1))[0]
		if got.DType() != dtypes.Int64 || !slices.Equal(tensors.MustCopyFlatData[int64](got), []int64{8, 9}) {
			t.Errorf("%s: int64 slice %v", config, got)
		}
	}
}

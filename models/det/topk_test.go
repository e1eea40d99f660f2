package det_test

import (
	"math"
	"math/rand/v2"
	"sort"
	"testing"

	. "github.com/gomlx/gomlx/pkg/core/graph"
	"github.com/gomlx/gomlx/pkg/core/tensors"

	"github.com/goselfsup/goselfsup/models/det"
)

// TopKMask marks the k largest valid scores, negative and positive, with ties broken by the
// higher index, as a sort on the host does it; TopK gathers them in index order.
func TestTopKMask(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	const rows, n = 3, 500
	scores := make([]float32, rows*n)
	valid := make([]bool, rows*n)
	for i := range scores {
		switch i % 4 {
		case 0, 1:
			scores[i] = float32(rng.IntN(200)-100) / 8 // many ties, both signs, zero
		case 2:
			scores[i] = float32(rng.NormFloat64() * math.Pow(10, float64(rng.IntN(60)-30))) // wide range
		default:
			scores[i] = math.Float32frombits(rng.Uint32() & 0x807fffff) // subnormals, -0
		}
		valid[i] = rng.IntN(5) != 0
	}
	for _, k := range []int{0, 1, 37, 250, 1000} {
		got := MustExecOnce(pureGo(t), func(s, v *Node) *Node { return det.TopKMask(s, v, k) },
			tensors.FromFlatDataAndDimensions(scores, rows, n), tensors.FromFlatDataAndDimensions(valid, rows, n)).Value().([][]bool)
		for r := range rows {
			var idx []int
			for i := range n {
				if valid[r*n+i] {
					idx = append(idx, i)
				}
			}
			sort.SliceStable(idx, func(a, b int) bool {
				sa, sb := scores[r*n+idx[a]], scores[r*n+idx[b]]
				return sa > sb || sa == sb && idx[a] > idx[b]
			})
			want := make([]bool, n)
			for _, i := range idx[:min(k, len(idx))] {
				want[i] = true
			}
			// TopK: the same entries in increasing index order, then empty slots.
			if k > 0 {
				var wantIdx []int32
				for i := range n {
					if want[i] {
						wantIdx = append(wantIdx, int32(i))
					}
				}
				out := MustExecOnceN(pureGo(t), func(s, v *Node) []*Node { i, ok := det.TopK(s, v, k); return []*Node{i, ok} },
					tensors.FromFlatDataAndDimensions(scores[r*n:(r+1)*n], n), tensors.FromFlatDataAndDimensions(valid[r*n:(r+1)*n], n))
				gotIdx, gotOK := out[0].Value().([]int32), out[1].Value().([]bool)
				for j := range k {
					if gotOK[j] != (j < len(wantIdx)) || j < len(wantIdx) && gotIdx[j] != wantIdx[j] {
						t.Fatalf("TopK k %d, row %d, slot %d: %d (%v), want %v", k, r, j, gotIdx[j], gotOK[j], wantIdx)
					}
				}
			}
			for i := range n {
				if got[r][i] != want[i] {
					t.Fatalf("k %d, row %d, entry %d (score %v, valid %v): %v, want %v", k, r, i, scores[r*n+i], valid[r*n+i], got[r][i], want[i])
				}
			}
		}
	}
}

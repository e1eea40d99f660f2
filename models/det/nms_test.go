package det_test

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"

	. "github.com/gomlx/gomlx/pkg/core/graph"
	"github.com/gomlx/gomlx/pkg/core/tensors"

	"github.com/goselfsup/goselfsup/models/det"
)

// greedyNMS is the textbook loop: visit the valid boxes by score descending, ties by index,
// keep a box unless an earlier kept box overlaps it with IoU > thr.
func greedyNMS(boxes, scores []float64, valid []bool, thr float64) []int {
	var order []int
	for i, v := range valid {
		if v {
			order = append(order, i)
		}
	}
	slices.SortStableFunc(order, func(a, b int) int {
		switch {
		case scores[a] > scores[b]:
			return -1
		case scores[a] < scores[b]:
			return 1
		}
		return 0
	})
	area := func(i int) float64 { return (boxes[4*i+2] - boxes[4*i]) * (boxes[4*i+3] - boxes[4*i+1]) }
	var keep []int
	suppressed := make([]bool, len(scores))
	for _, i := range order {
		if suppressed[i] {
			continue
		}
		keep = append(keep, i)
		for _, j := range order {
			w := max(0, min(boxes[4*i+2], boxes[4*j+2])-max(boxes[4*i], boxes[4*j]))
			h := max(0, min(boxes[4*i+3], boxes[4*j+3])-max(boxes[4*i+1], boxes[4*j+1]))
			inter := w * h
			if inter/(area(i)+area(j)-inter) > thr {
				suppressed[j] = true
			}
		}
	}
	return keep
}

// TestNMSMatchesGreedy checks NMS against greedyNMS in float64 without Python: long
// suppression chains (a row of shifted boxes with decreasing scores), ties, invalid boxes, a
// truncated output, and the invalid slots.
func TestNMSMatchesGreedy(t *testing.T) {
	b := pureGo(t)
	rng := rand.New(rand.NewPCG(9, 10))
	const k, n = 4, 64
	var boxes, scores []float64
	var valid []bool
	for c := range k {
		for i := range n {
			var x float64
			if c == 0 { // a chain: box i overlaps only i-1 and i+1 enough to be suppressed
				x = float64(i) * 4
			} else {
				x = rng.Float64() * 60
			}
			y := rng.Float64() * 4
			if c == 0 {
				y = 0
			}
			boxes = append(boxes, x, y, x+10, y+10)
			s := 1 - float64(i)/n
			if c >= 2 {
				s = float64(rng.IntN(5))
			}
			scores = append(scores, s)
			valid = append(valid, c == 0 || rng.Float64() < 0.8)
		}
	}
	for _, maxOut := range []int{n, 9} {
		outs := MustExecOnceN(b, func(bx, sc, va *Node) []*Node {
			keep, ok := det.NMS(bx, sc, va, 0.3, maxOut)
			return []*Node{keep, ok}
		}, tensors.FromFlatDataAndDimensions(boxes, k, n, 4), tensors.FromFlatDataAndDimensions(scores, k, n),
			tensors.FromFlatDataAndDimensions(valid, k, n))
		keep := tensors.MustCopyFlatData[int32](outs[0])
		ok := tensors.MustCopyFlatData[bool](outs[1])
		for c := range k {
			want := greedyNMS(boxes[4*n*c:4*n*(c+1)], scores[n*c:n*(c+1)], valid[n*c:n*(c+1)], 0.3)
			if c == 0 && len(want) != n/2 {
				t.Fatalf("the chain keeps %d boxes, want %d", len(want), n/2)
			}
			want = want[:min(len(want), maxOut)]
			var got []int
			for j := range maxOut {
				if ok[c*maxOut+j] {
					got = append(got, int(keep[c*maxOut+j]))
				}
			}
			if fmt.Sprint(got) != fmt.Sprint(want) {
				t.Errorf("maxOut %d problem %d:\n got %v\nwant %v", maxOut, c, got, want)
			}
		}
	}
}

// TestNMSNoneValid: with no valid box every slot is invalid and holds 0; a single valid box
// is kept alone.
func TestNMSNoneValid(t *testing.T) {
	b := pureGo(t)
	boxes := tensors.FromFlatDataAndDimensions([]float32{0, 0, 1, 1, 0, 0, 1, 1, 2, 2, 3, 3}, 3, 4)
	scores := tensors.FromFlatDataAndDimensions([]float32{0.5, 0.9, 0.1}, 3)
	for _, tc := range []struct {
		valid []bool
		want  string
	}{{[]bool{false, false, false}, "[0 0 0 0] [false false false false]"}, {[]bool{false, false, true}, "[2 0 0 0] [true false false false]"}} {
		outs := MustExecOnceN(b, func(bx, sc, va *Node) []*Node {
			keep, ok := det.NMS(bx, sc, va, 0.5, 4)
			return []*Node{keep, ok}
		}, boxes, scores, tensors.FromFlatDataAndDimensions(tc.valid, 3))
		got := fmt.Sprint(tensors.MustCopyFlatData[int32](outs[0]), tensors.MustCopyFlatData[bool](outs[1]))
		if got != tc.want {
			t.Errorf("valid %v: got %s, want %s", tc.valid, got, tc.want)
		}
	}
}

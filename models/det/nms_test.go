package det_test

import (
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"slices"
	"testing"

	"github.com/gomlx/gomlx/pkg/core/dtypes"
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
	b := opsBackend(t)
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
	b := opsBackend(t)
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

// nmsCase is one NMS problem.
type nmsCase struct {
	boxes, scores []float64
	classes       []int64
	valid         []bool
}

// randomNMSCase draws n clustered boxes (opsRandomBoxes), scores uniform or, with levels > 0, on
// that many levels (ties; a copied box also copies its predecessor's score), 85% valid, and
// classes in [0, classes).
func randomNMSCase(rng *rand.Rand, n, levels, classes int) nmsCase {
	c := nmsCase{boxes: opsRandomBoxes(rng, n), scores: make([]float64, n), valid: make([]bool, n), classes: make([]int64, n)}
	for i := range n {
		c.scores[i] = rng.Float64()
		if levels > 0 {
			c.scores[i] = float64(rng.IntN(levels)) / float64(levels)
			if i > 0 && slices.Equal(c.boxes[4*i:4*i+4], c.boxes[4*i-4:4*i]) {
				c.scores[i] = c.scores[i-1]
			}
		}
		c.valid[i] = rng.Float64() < 0.85
		c.classes[i] = int64(rng.IntN(classes))
	}
	return c
}

// nmsGroup is a batch of NMS problems of one size, dtype and threshold, checked with every
// maxOut of maxOuts.
type nmsGroup struct {
	name    string
	dt      dtypes.DType
	cases   []nmsCase
	thr     float64
	maxOuts []int
}

func (g nmsGroup) caseName(i int) string { return fmt.Sprintf("%s-%s-%g-%d", g.name, g.dt, g.thr, i) }

// nmsGroups returns the problems of mode "nms" or "batched_nms". Problems with tied scores
// have 16 boxes: PyTorch's CPU sort, which torchvision's nms uses, keeps equal values in index
// order only up to 16 elements (std::sort's insertion sort), and the tie rule of NMS is that
// order; larger problems with ties are checked against a Go greedy loop (nms_test.go).
func nmsGroups(mode string) []nmsGroup {
	var groups []nmsGroup
	for _, tc := range opsDTypes {
		rng := rand.New(rand.NewPCG(3, uint64(tc.dt)))
		if mode == "nms" {
			var cont, ties []nmsCase
			for i := range 6 {
				cont = append(cont, randomNMSCase(rng, 40, 0, 1))
				ties = append(ties, randomNMSCase(rng, 16, 3-i%2, 1))
			}
			groups = append(groups,
				nmsGroup{"uniform", tc.dt, cont, 0.5, []int{40, 5}},
				nmsGroup{"uniform", tc.dt, cont, 0.7, []int{43}},
				nmsGroup{"uniform", tc.dt, cont, 0.3, []int{40}},
				nmsGroup{"ties", tc.dt, ties, 0.5, []int{16, 3}},
				nmsGroup{"ties", tc.dt, ties, 0.3, []int{16}})
			continue
		}
		var cont, ties []nmsCase
		for range 4 {
			cont = append(cont, randomNMSCase(rng, 40, 0, 3))
			ties = append(ties, randomNMSCase(rng, 16, 2, 2))
		}
		groups = append(groups,
			nmsGroup{"uniform", tc.dt, cont, 0.5, []int{40, 7}},
			nmsGroup{"ties", tc.dt, ties, 0.5, []int{16}})
	}
	return groups
}

// checkNMS runs NMS (mode "nms": torchvision.ops.nms) or BatchedNMS (mode "batched_nms":
// torchvision's batched_nms by coordinate offsets, mmcv's below its split_thr) on all problems
// of each group at once (a leading batch axis) and compares the kept indices with the
// reference's, truncated to maxOut. The boxes overlap a lot (zero-area ones and identical pairs
// included), scores are uniform or tied, about 15% of the boxes are invalid.
func checkNMS(t *testing.T, root, mode string) {
	b := opsBackend(t)
	for _, gr := range nmsGroups(mode) {
		k, n := len(gr.cases), len(gr.cases[0].scores)
		var boxes, scores []float64
		var classes []int64
		var valid []bool
		for _, c := range gr.cases {
			boxes, scores = append(boxes, c.boxes...), append(scores, c.scores...)
			classes, valid = append(classes, c.classes...), append(valid, c.valid...)
		}
		for _, maxOut := range gr.maxOuts {
			outs := MustExecOnceN(b, func(bx, sc, cl, va *Node) []*Node {
				var keep, ok *Node
				if mode == "nms" {
					keep, ok = det.NMS(bx, sc, va, gr.thr, maxOut)
				} else {
					keep, ok = det.BatchedNMS(bx, sc, cl, va, gr.thr, maxOut)
				}
				return []*Node{keep, ok}
			}, opsTensor(gr.dt, boxes, k, n, 4), opsTensor(gr.dt, scores, k, n),
				tensors.FromFlatDataAndDimensions(classes, k, n), tensors.FromFlatDataAndDimensions(valid, k, n))
			keep := tensors.MustCopyFlatData[int32](outs[0])
			ok := tensors.MustCopyFlatData[bool](outs[1])
			for i := range gr.cases {
				want := opsFloats(t, opsReadNPY(t, filepath.Join(root, mode, gr.caseName(i), "keep.npy")))
				want = want[:min(len(want), maxOut)]
				var got []float64
				for j := range maxOut {
					if ok[i*maxOut+j] {
						if len(got) != j {
							t.Fatalf("%s %s: keepValid is not a prefix", mode, gr.caseName(i))
						}
						got = append(got, float64(keep[i*maxOut+j]))
					} else if keep[i*maxOut+j] != 0 {
						t.Errorf("%s %s: invalid slot %d holds %d", mode, gr.caseName(i), j, keep[i*maxOut+j])
					}
				}
				if fmt.Sprint(got) != fmt.Sprint(want) {
					t.Errorf("%s %s maxOut %d:\n got %v\nwant %v", mode, gr.caseName(i), maxOut, got, want)
				}
			}
		}
	}
}

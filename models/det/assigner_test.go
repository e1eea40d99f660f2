package det_test

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"

	. "github.com/gomlx/gomlx/pkg/core/graph"
	"github.com/gomlx/gomlx/pkg/core/tensors"

	"github.com/goselfsup/goselfsup/models/det"
	"github.com/goselfsup/goselfsup/registry"
)

const (
	neg = det.AssignNegative // -1
	ign = det.AssignIgnored  // -2
)

// rpnAssigner is the R50-C4 RPN's assigner: pos >= 0.7, neg < 0.3, low-quality matches
// at >= 0.3 to every box of a GT's best IoU.
func rpnAssigner() *det.MaxIoUAssigner {
	return &det.MaxIoUAssigner{PosIoUThr: 0.7, NegIoUThr: det.IoURange{Lo: 0, Hi: 0.3}, MinPosIoU: 0.3,
		GTMaxAssignAll: true, IgnoreIoFThr: -1, MatchLowQuality: true}
}

// assignCase runs Assign on one image (iou [N][G] float32; nil masks: all valid).
type assignCase struct {
	name      string
	a         *det.MaxIoUAssigner
	iou       [][]float32
	boxValid  []bool
	gtValid   []bool
	labels    []int32
	wantInds  []int32
	wantMax   []float32
	wantLabel []int32
}

func runAssign(t *testing.T, c assignCase) {
	t.Helper()
	b := pureGo(t)
	n, g := len(c.iou), len(c.iou[0])
	boxValid, gtValid, labels := c.boxValid, c.gtValid, c.labels
	if boxValid == nil {
		boxValid = slices.Repeat([]bool{true}, n)
	}
	if gtValid == nil {
		gtValid = slices.Repeat([]bool{true}, g)
	}
	if labels == nil {
		labels = make([]int32, g)
	}
	outs := MustExecOnceN(b, func(iou, bv, gv, lab *Node) []*Node {
		r := c.a.Assign(iou, bv, gv, lab)
		return []*Node{r.GTInds, r.MaxOverlaps, r.Labels}
	}, c.iou, boxValid, gtValid, labels)
	inds := tensors.MustCopyFlatData[int32](outs[0])
	if !slices.Equal(inds, c.wantInds) {
		t.Errorf("%s: gt inds %v, want %v", c.name, inds, c.wantInds)
	}
	if c.wantMax != nil {
		if got := tensors.MustCopyFlatData[float32](outs[1]); !slices.Equal(got, c.wantMax) {
			t.Errorf("%s: max overlaps %v, want %v", c.name, got, c.wantMax)
		}
	}
	if c.wantLabel != nil {
		if got := tensors.MustCopyFlatData[int32](outs[2]); !slices.Equal(got, c.wantLabel) {
			t.Errorf("%s: labels %v, want %v", c.name, got, c.wantLabel)
		}
	}
}

// TestAssignHandMade checks assign_wrt_overlaps' rules on small matrices whose outcome is
// derived by hand in the comments.
func TestAssignHandMade(t *testing.T) {
	// Six anchors, two GT, the RPN's thresholds (pos 0.7, neg 0.3, min_pos 0.3):
	//   a0 [0.80 0.10]  max 0.80 >= 0.7: positive for gt0
	//   a1 [0.20 0.10]  max 0.20 < 0.3: negative
	//   a2 [0.50 0.40]  max 0.50 in between, but gt1's best IoU is 0.40 (>= 0.3) here:
	//                   a low-quality positive for gt1
	//   a3 [0.45 0.35]  max 0.45 in between, nobody's best: ignored
	//   a4 [0.00 0.00]  max 0 (>= 0, < 0.3): negative
	//   a5 [0.80 0.20]  positive for gt0 (and it ties a0 as gt0's best)
	basic := [][]float32{{0.8, 0.1}, {0.2, 0.1}, {0.5, 0.4}, {0.45, 0.35}, {0, 0}, {0.8, 0.2}}
	runAssign(t, assignCase{name: "basic", a: rpnAssigner(), iou: basic, labels: []int32{7, 3},
		wantInds:  []int32{0, neg, 1, ign, neg, 0},
		wantMax:   []float32{0.8, 0.2, 0.5, 0.45, 0, 0.8},
		wantLabel: []int32{7, -1, 3, -1, -1, 7}})

	// Ties and overwriting, three GT, four anchors, all maxima in between (0.3..0.7):
	//   a0 [0.50 0.50 0.10]   a1 [0.60 0.20 0.60]   a2 [0.10 0.50 0.60]   a3 [0.60 0.10 0.05]
	// GT bests: gt0 0.60 at a1, a3; gt1 0.50 at a0, a2; gt2 0.60 at a1, a2.
	// Low-quality matching in GT order with gt_max_assign_all: gt0 takes a1, a3; gt1 takes
	// a0, a2; gt2 takes a1, a2, overwriting gt0 at a1 and gt1 at a2.
	ties := [][]float32{{0.5, 0.5, 0.1}, {0.6, 0.2, 0.6}, {0.1, 0.5, 0.6}, {0.6, 0.1, 0.05}}
	runAssign(t, assignCase{name: "later GT overwrites", a: rpnAssigner(), iou: ties, labels: []int32{7, 3, 5},
		wantInds: []int32{1, 2, 2, 0}, wantMax: []float32{0.5, 0.6, 0.6, 0.6}, wantLabel: []int32{3, 5, 5, 7}})
	// Without low-quality matching every anchor is ignored.
	noLQ := rpnAssigner()
	noLQ.MatchLowQuality = false
	runAssign(t, assignCase{name: "no low quality", a: noLQ, iou: ties, wantInds: []int32{ign, ign, ign, ign}})
	// gt_max_assign_all false: only each GT's first best anchor: gt0 -> a1, gt1 -> a0,
	// gt2 -> a1 (overwriting gt0); a2 and a3 stay ignored.
	first := rpnAssigner()
	first.GTMaxAssignAll = false
	runAssign(t, assignCase{name: "first best only", a: first, iou: ties, wantInds: []int32{1, 2, ign, ign}})
	// min_pos_iou 0.55: gt1 (best 0.50) gets no low-quality match; gt0 takes a1, a3, gt2
	// takes a1, a2; a0 stays ignored.
	minPos := rpnAssigner()
	minPos.MinPosIoU = 0.55
	runAssign(t, assignCase{name: "min_pos_iou", a: minPos, iou: ties, wantInds: []int32{ign, 2, 2, 0}})
	// pos_iou_thr 0.55 without low quality: a1's max 0.60 ties gt0 and gt2, the argmax is
	// the first (gt0, as torch.max); a2 -> gt2, a3 -> gt0; a0 (0.50) ignored.
	tiePos := &det.MaxIoUAssigner{PosIoUThr: 0.55, NegIoUThr: det.IoURange{Hi: 0.3}, IgnoreIoFThr: -1}
	runAssign(t, assignCase{name: "argmax tie", a: tiePos, iou: ties, wantInds: []int32{ign, 0, 2, 0}})

	// Invalid anchors and a padded GT column (gt2) whose IoU would otherwise win:
	//   a0 [0.40 0.10 0.90] valid     a1 [0.95 0.20 0.00] invalid
	//   a2 [0.35 0.25 0.00] valid     a3 [0.10 0.05 0.90] valid
	// Over the valid columns: a0 max 0.40 (gt0), a2 0.35, a3 0.10. gt0's best over the
	// valid anchors is 0.40 at a0 (a1's 0.95 does not count): a0 a low-quality positive;
	// gt1's best 0.25 < 0.3: no match. a2 ignored, a3 negative, a1 ignored (invalid, max 0).
	masked := [][]float32{{0.4, 0.1, 0.9}, {0.95, 0.2, 0}, {0.35, 0.25, 0}, {0.1, 0.05, 0.9}}
	runAssign(t, assignCase{name: "invalid anchors", a: rpnAssigner(), iou: masked,
		boxValid: []bool{true, false, true, true}, gtValid: []bool{true, true, false}, labels: []int32{4, 6, 9},
		wantInds: []int32{0, ign, ign, neg}, wantMax: []float32{0.4, 0, 0.35, 0.1}, wantLabel: []int32{4, -1, -1, -1}})
	// The same with a1 valid: a1 is positive (0.95) and gt0's best, so a0 (0.40) is ignored.
	runAssign(t, assignCase{name: "anchors all valid", a: rpnAssigner(), iou: masked, gtValid: []bool{true, true, false},
		wantInds: []int32{ign, 0, ign, neg}, wantMax: []float32{0.4, 0.95, 0.35, 0.1}})

	// No GT (both columns padded): every valid anchor negative, max overlap 0, label -1;
	// the invalid anchor ignored.
	runAssign(t, assignCase{name: "no GT", a: rpnAssigner(), iou: [][]float32{{0.9, 0.1}, {0.5, 0.5}, {0, 0.8}},
		boxValid: []bool{true, false, true}, gtValid: []bool{false, false},
		wantInds: []int32{neg, ign, neg}, wantMax: []float32{0, 0, 0}, wantLabel: []int32{-1, -1, -1}})

	// neg_iou_thr as a range [0.1, 0.5) and pos at exactly the threshold (RoI-head style, no
	// low quality): 0.05 below the range is ignored, 0.1 and 0.49 negative, 0.5 positive.
	rangeA := &det.MaxIoUAssigner{PosIoUThr: 0.5, NegIoUThr: det.IoURange{Lo: 0.1, Hi: 0.5}, MinPosIoU: 0.5, IgnoreIoFThr: -1}
	runAssign(t, assignCase{name: "neg range", a: rangeA, iou: [][]float32{{0.05}, {0.1}, {0.49}, {0.5}},
		wantInds: []int32{ign, neg, neg, 0}})
}

// iouHost is mmdet's bbox_overlaps (mode iou, no +1, eps 1e-6) on the host.
func iouHost(a, b []float64) float64 {
	w := math.Max(math.Min(a[2], b[2])-math.Max(a[0], b[0]), 0)
	h := math.Max(math.Min(a[3], b[3])-math.Max(a[1], b[1]), 0)
	inter := w * h
	union := (a[2]-a[0])*(a[3]-a[1]) + (b[2]-b[0])*(b[3]-b[1]) - inter
	return inter / math.Max(union, 1e-6)
}

// assignLoop is assign_wrt_overlaps transcribed as loops over the valid boxes (mmdet
// assigns only the anchors inside the image) and the valid GT, in mmdet's encoding
// converted to det's at the end.
func assignLoop(a *det.MaxIoUAssigner, iou [][]float64, boxValid, gtValid []bool) []int32 {
	var rows, cols []int
	for i, ok := range boxValid {
		if ok {
			rows = append(rows, i)
		}
	}
	for j, ok := range gtValid {
		if ok {
			cols = append(cols, j)
		}
	}
	out := slices.Repeat([]int32{ign}, len(iou))
	if len(cols) == 0 {
		for _, i := range rows {
			out[i] = neg
		}
		return out
	}
	assigned := make([]int, len(rows)) // mmdet: -1 ignore, 0 negative, k + 1 GT k
	maxOv := make([]float64, len(rows))
	argmax := make([]int, len(rows))
	for r, i := range rows {
		assigned[r] = -1
		maxOv[r] = math.Inf(-1)
		for c, j := range cols {
			if iou[i][j] > maxOv[r] {
				maxOv[r], argmax[r] = iou[i][j], c
			}
		}
		if maxOv[r] >= a.NegIoUThr.Lo && maxOv[r] < a.NegIoUThr.Hi {
			assigned[r] = 0
		}
		if maxOv[r] >= a.PosIoUThr {
			assigned[r] = argmax[r] + 1
		}
	}
	if a.MatchLowQuality {
		for c, j := range cols {
			best, bestRow := math.Inf(-1), -1
			for r, i := range rows {
				if iou[i][j] > best {
					best, bestRow = iou[i][j], r
				}
			}
			if best < a.MinPosIoU || bestRow < 0 {
				continue
			}
			if a.GTMaxAssignAll {
				for r, i := range rows {
					if iou[i][j] == best {
						assigned[r] = c + 1
					}
				}
			} else {
				assigned[bestRow] = c + 1
			}
		}
	}
	for r, i := range rows {
		switch {
		case assigned[r] > 0:
			out[i] = int32(cols[assigned[r]-1])
		case assigned[r] == 0:
			out[i] = neg
		}
	}
	return out
}

// TestAssignMatchesLoop compares Assign, batched, with the loop transcription on IoU
// matrices of random boxes on a coarse integer grid (so that IoUs tie), with invalid
// anchors and padded GT, for the RPN and RoI-head settings.
func TestAssignMatchesLoop(t *testing.T) {
	b := pureGo(t)
	rng := rand.New(rand.NewPCG(7, 8))
	const batch, n, g = 6, 30, 5
	box := func() []float64 {
		x, y := float64(rng.IntN(6)*4), float64(rng.IntN(6)*4)
		return []float64{x, y, x + float64(4+rng.IntN(3)*4), y + float64(4+rng.IntN(3)*4)}
	}
	iou := make([][][]float64, batch)
	boxValid := make([][]bool, batch)
	gtValid := make([][]bool, batch)
	for bi := range batch {
		anchors, gts := make([][]float64, n), make([][]float64, g)
		for i := range anchors {
			anchors[i] = box()
		}
		for j := range gts {
			gts[j] = box()
		}
		iou[bi] = make([][]float64, n)
		boxValid[bi] = make([]bool, n)
		for i := range anchors {
			iou[bi][i] = make([]float64, g)
			for j := range gts {
				iou[bi][i][j] = iouHost(anchors[i], gts[j])
			}
			boxValid[bi][i] = rng.IntN(5) != 0
		}
		gtValid[bi] = make([]bool, g)
		for j := range g {
			gtValid[bi][j] = j < bi // image 0 has no GT, image 5 all five
		}
	}
	rcnn := &det.MaxIoUAssigner{PosIoUThr: 0.5, NegIoUThr: det.IoURange{Hi: 0.5}, MinPosIoU: 0.5, IgnoreIoFThr: -1}
	first := rpnAssigner()
	first.GTMaxAssignAll = false
	for name, a := range map[string]*det.MaxIoUAssigner{"rpn": rpnAssigner(), "rcnn": rcnn, "first": first} {
		out := MustExecOnce(b, func(iou, bv, gv *Node) *Node {
			return a.Assign(iou, bv, gv, nil).GTInds
		}, iou, boxValid, gtValid)
		got := tensors.MustCopyFlatData[int32](out)
		for bi := range batch {
			want := assignLoop(a, iou[bi], boxValid[bi], gtValid[bi])
			if !slices.Equal(got[bi*n:(bi+1)*n], want) {
				t.Errorf("%s image %d:\n got %v\nwant %v", name, bi, got[bi*n:(bi+1)*n], want)
			}
		}
	}
}

// TestAssignerRegistered decodes the RPN assigner, neg_iou_thr as a number and a range.
func TestAssignerRegistered(t *testing.T) {
	for _, tc := range []struct {
		neg  any
		want det.IoURange
	}{{0.3, det.IoURange{Lo: 0, Hi: 0.3}}, {[]any{0.1, 0.3}, det.IoURange{Lo: 0.1, Hi: 0.3}}} {
		v, err := registry.Default.Decode(registry.NewSpec(det.BBoxAssigners, "MaxIoUAssigner", map[string]any{
			"pos_iou_thr": 0.7, "neg_iou_thr": tc.neg, "min_pos_iou": 0.3, "match_low_quality": true, "ignore_iof_thr": -1,
		}))
		if err != nil {
			t.Fatal(err)
		}
		a := v.(*det.MaxIoUAssigner)
		if a.NegIoUThr != tc.want || !a.GTMaxAssignAll || a.PosIoUThr != 0.7 {
			t.Errorf("decoded %+v", a)
		}
	}
	if _, err := registry.Default.Decode(registry.NewSpec(det.BBoxAssigners, "MaxIoUAssigner", map[string]any{
		"pos_iou_thr": 0.7, "neg_iou_thr": 0.3, "ignore_iof_thr": 0.5,
	})); err == nil {
		t.Error("ignore_iof_thr 0.5 was accepted")
	}
}

package det_test

import (
	"fmt"
	"math"
	"slices"
	"testing"

	. "github.com/gomlx/gomlx/pkg/core/graph"
	"github.com/gomlx/gomlx/pkg/core/tensors"

	"github.com/goselfsup/goselfsup/models/det"
	"github.com/goselfsup/goselfsup/registry"
)

// sampled is one image's SampleResult on the host.
type sampled struct {
	indices         []int32
	valid, positive []bool
	numPos, numNeg  int32
}

// runSample samples gtInds [B][N] with an RNG state from seed and returns each image's
// result.
func runSample(t *testing.T, s *det.RandomSampler, seed int64, gtInds [][]int32) []sampled {
	t.Helper()
	b := pureGo(t)
	state, err := RNGStateFromSeed(seed)
	if err != nil {
		t.Fatal(err)
	}
	outs := MustExecOnceN(b, func(state, inds *Node) []*Node {
		_, r := s.Sample(state, inds)
		return []*Node{r.Indices, r.Valid, r.Positive, r.NumPos, r.NumNeg}
	}, state, gtInds)
	idx := tensors.MustCopyFlatData[int32](outs[0])
	valid := tensors.MustCopyFlatData[bool](outs[1])
	pos := tensors.MustCopyFlatData[bool](outs[2])
	np := tensors.MustCopyFlatData[int32](outs[3])
	nn := tensors.MustCopyFlatData[int32](outs[4])
	res := make([]sampled, len(gtInds))
	for i := range res {
		lo, hi := i*s.Num, (i+1)*s.Num
		res[i] = sampled{idx[lo:hi], valid[lo:hi], pos[lo:hi], np[i], nn[i]}
	}
	return res
}

// checkSample verifies the invariants of one image's sample: positives first, then
// negatives, then empty slots; every sampled index a distinct candidate of its kind.
func checkSample(t *testing.T, what string, r sampled, gtInds []int32, wantPos, wantNeg int) {
	t.Helper()
	if int(r.numPos) != wantPos || int(r.numNeg) != wantNeg {
		t.Fatalf("%s: %d positives and %d negatives, want %d and %d", what, r.numPos, r.numNeg, wantPos, wantNeg)
	}
	seen := map[int32]bool{}
	for k := range r.indices {
		i := r.indices[k]
		switch {
		case k < wantPos:
			if !r.valid[k] || !r.positive[k] || gtInds[i] < 0 {
				t.Fatalf("%s: slot %d = index %d (gt %d, valid %v, positive %v), want a positive", what, k, i, gtInds[i], r.valid[k], r.positive[k])
			}
		case k < wantPos+wantNeg:
			if !r.valid[k] || r.positive[k] || gtInds[i] != det.AssignNegative {
				t.Fatalf("%s: slot %d = index %d (gt %d, valid %v, positive %v), want a negative", what, k, i, gtInds[i], r.valid[k], r.positive[k])
			}
		default:
			if r.valid[k] || r.positive[k] || i != 0 {
				t.Fatalf("%s: slot %d = index %d, valid %v, want an empty slot", what, k, i, r.valid[k])
			}
			continue
		}
		if seen[i] {
			t.Fatalf("%s: index %d sampled twice", what, i)
		}
		seen[i] = true
	}
}

// gtIndsOf builds an assignment of n boxes: the listed counts of positives (GT i % 3),
// negatives and ignored boxes, interleaved.
func gtIndsOf(nPos, nNeg, nIgn int) []int32 {
	var out []int32
	for n := nPos + nNeg + nIgn; len(out) < n; {
		if nPos > 0 {
			out, nPos = append(out, int32(len(out)%3)), nPos-1
		}
		if nNeg > 0 {
			out, nNeg = append(out, det.AssignNegative), nNeg-1
		}
		if nIgn > 0 {
			out, nIgn = append(out, det.AssignIgnored), nIgn-1
		}
	}
	return out
}

// TestSampleCounts checks mmdet's counts: positives capped at int(num * pos_fraction),
// negatives filling the rest, too few candidates leaving empty slots, neg_pos_ub, and that
// only candidates are drawn; with more than one prefix-count block (N > 256).
func TestSampleCounts(t *testing.T) {
	rpn := &det.RandomSampler{Num: 16, PosFraction: 0.25, NegPosUB: -1}
	for _, tc := range []struct {
		name             string
		s                *det.RandomSampler
		nPos, nNeg, nIgn int
		wantPos, wantNeg int
	}{
		{"capped", rpn, 10, 25, 5, 4, 12},       // 4 = int(16 * 0.25) positives, 12 negatives
		{"few positives", rpn, 2, 25, 5, 2, 14}, // negatives fill 14
		{"few candidates", rpn, 2, 3, 30, 2, 3}, // 11 empty slots
		{"no candidates", rpn, 0, 0, 7, 0, 0},   // all empty
		{"no positives", rpn, 0, 40, 0, 0, 16},  // all negatives
		{"neg_pos_ub", &det.RandomSampler{Num: 20, PosFraction: 0.5, NegPosUB: 2}, 3, 30, 0, 3, 6},
		{"neg_pos_ub no pos", &det.RandomSampler{Num: 20, PosFraction: 0.5, NegPosUB: 2.5}, 0, 30, 0, 0, 2},
		{"blocks", &det.RandomSampler{Num: 512, PosFraction: 0.25, NegPosUB: -1}, 300, 500, 200, 128, 384},
		{"blocks few", &det.RandomSampler{Num: 512, PosFraction: 0.25, NegPosUB: -1}, 20, 300, 300, 20, 300},
	} {
		inds := gtIndsOf(tc.nPos, tc.nNeg, tc.nIgn)
		res := runSample(t, tc.s, 1, [][]int32{inds, inds})
		for _, r := range res {
			checkSample(t, tc.name, r, inds, tc.wantPos, tc.wantNeg)
		}
		// With at most k candidates of a kind, all of them are drawn.
		if tc.nPos <= tc.wantPos {
			for i, g := range inds {
				if g >= 0 && !slices.Contains(res[0].indices[:tc.wantPos], int32(i)) {
					t.Errorf("%s: positive %d not sampled", tc.name, i)
				}
			}
		}
	}
}

// TestSampleDeterministic checks that a seed fixes the sample, that another seed changes
// it, and that the images of a batch draw independently.
func TestSampleDeterministic(t *testing.T) {
	s := &det.RandomSampler{Num: 32, PosFraction: 0.5, NegPosUB: -1}
	inds := gtIndsOf(40, 100, 10)
	a := runSample(t, s, 42, [][]int32{inds, inds})
	b := runSample(t, s, 42, [][]int32{inds, inds})
	c := runSample(t, s, 43, [][]int32{inds, inds})
	if !slices.Equal(a[0].indices, b[0].indices) || !slices.Equal(a[1].indices, b[1].indices) {
		t.Errorf("the same seed sampled %v and %v", a[0].indices, b[0].indices)
	}
	if slices.Equal(a[0].indices, c[0].indices) {
		t.Errorf("seeds 42 and 43 sampled the same %v", a[0].indices)
	}
	if slices.Equal(a[0].indices, a[1].indices) {
		t.Errorf("two images sampled the same %v", a[0].indices)
	}
	// The same keys through SampleWithKeys give the same sample as Sample.
	be := pureGo(t)
	state, _ := RNGStateFromSeed(42)
	out := MustExecOnce(be, func(state, gi *Node) *Node {
		_, keys := det.SampleKeys(state, gi.Shape().Dimensions...)
		return s.SampleWithKeys(keys, gi).Indices
	}, state, [][]int32{inds, inds})
	if got := tensors.MustCopyFlatData[int32](out); !slices.Equal(got[:s.Num], a[0].indices) {
		t.Errorf("SampleWithKeys sampled %v, Sample %v", got[:s.Num], a[0].indices)
	}
}

// TestSampleUniform draws 4,000 images (a batch, so independent keys) of 5 positives, 6
// negatives and one ignored box, 3 of each kind sampled: each positive must come up with
// frequency 3/5, each negative 1/2, each of the 10 pairs of unsampled positives 1/10, the
// ignored box never. The bounds are 6 standard deviations: a false failure is
// astronomically unlikely, and the seed is fixed anyway.
func TestSampleUniform(t *testing.T) {
	s := &det.RandomSampler{Num: 6, PosFraction: 0.5, NegPosUB: -1}
	inds := []int32{0, 1, 0, 2, 1, -1, -1, -1, -1, -1, -1, -2}
	const images = 4000
	batch := make([][]int32, images)
	for i := range batch {
		batch[i] = inds
	}
	res := runSample(t, s, 7, batch)
	counts := make([]int, len(inds))
	pairs := map[[2]int32]int{}
	for _, r := range res {
		checkSample(t, "uniform", r, inds, 3, 3)
		var missing []int32
		for i := int32(0); i < 5; i++ {
			if !slices.Contains(r.indices[:3], i) {
				missing = append(missing, i)
			}
		}
		pairs[[2]int32{missing[0], missing[1]}]++
		for _, i := range r.indices {
			counts[i]++
		}
	}
	within := func(what string, got int, p float64) {
		mean, sd := images*p, math.Sqrt(images*p*(1-p))
		if math.Abs(float64(got)-mean) > 6*sd {
			t.Errorf("%s: %d of %d, want %.0f ± %.0f", what, got, images, mean, 6*sd)
		}
	}
	for i, c := range counts {
		switch {
		case inds[i] >= 0:
			within("positive", c, 3.0/5)
		case inds[i] == -1:
			within("negative", c, 0.5)
		case c != 0:
			t.Errorf("ignored box %d sampled %d times", i, c)
		}
	}
	if len(pairs) != 10 {
		t.Errorf("%d distinct pairs of unsampled positives, want 10", len(pairs))
	}
	for p, c := range pairs {
		within(fmt.Sprintf("positives %v left out", p), c, 0.1)
	}
	t.Logf("frequencies over %d images: %v", images, counts)
}

// TestAddGTAsProposals prepends two GT boxes, one padded, to three proposals and samples:
// the valid GT row is a positive of itself, the padded row never drawn.
func TestAddGTAsProposals(t *testing.T) {
	b := pureGo(t)
	s := &det.RandomSampler{Num: 8, PosFraction: 0.25, NegPosUB: -1, AddGTAsProposals: true}
	proposals := [][]float32{{0, 0, 10, 10}, {5, 5, 15, 15}, {20, 20, 30, 30}}
	gt := [][]float32{{1, 1, 11, 11}, {0, 0, 0, 0}}
	state, _ := RNGStateFromSeed(3)
	outs := MustExecOnceN(b, func(in []*Node) []*Node {
		state, p, g, gv, gl, inds, ov, lab := in[0], in[1], in[2], in[3], in[4], in[5], in[6], in[7]
		assign := det.AssignResult{GTInds: inds, MaxOverlaps: ov, Labels: lab}
		boxes, r, isGT := s.Prepare(p, g, gv, gl, assign)
		_, smp := s.Sample(state, r.GTInds)
		return []*Node{boxes, r.GTInds, r.MaxOverlaps, r.Labels, isGT, smp.Indices, smp.Valid, smp.Positive,
			det.GatherRows(boxes, smp.Indices)}
	}, state, proposals, gt, []bool{true, false}, []int32{6, 9},
		[]int32{0, -1, -2}, []float32{0.7, 0.1, 0.4}, []int32{6, -1, -1})
	if got := tensors.MustCopyFlatData[float32](outs[0]); !slices.Equal(got[:8], []float32{1, 1, 11, 11, 0, 0, 0, 0}) || len(got) != 20 {
		t.Errorf("boxes %v", got)
	}
	if got := tensors.MustCopyFlatData[int32](outs[1]); !slices.Equal(got, []int32{0, -2, 0, -1, -2}) {
		t.Errorf("gt inds %v", got)
	}
	if got := tensors.MustCopyFlatData[float32](outs[2]); !slices.Equal(got, []float32{1, 0, 0.7, 0.1, 0.4}) {
		t.Errorf("max overlaps %v", got)
	}
	if got := tensors.MustCopyFlatData[int32](outs[3]); !slices.Equal(got, []int32{6, -1, 6, -1, -1}) {
		t.Errorf("labels %v", got)
	}
	if got := tensors.MustCopyFlatData[bool](outs[4]); !slices.Equal(got, []bool{true, false, false, false, false}) {
		t.Errorf("isGT %v", got)
	}
	// int(8 * 0.25) = 2 positives: rows 0 (the GT) and 2; one negative: row 3.
	idx := tensors.MustCopyFlatData[int32](outs[5])
	valid := tensors.MustCopyFlatData[bool](outs[6])
	pos := tensors.MustCopyFlatData[bool](outs[7])
	if !slices.Equal(idx[:3], []int32{0, 2, 3}) || !slices.Equal(valid[:4], []bool{true, true, true, false}) ||
		!slices.Equal(pos[:3], []bool{true, true, false}) {
		t.Errorf("sampled %v valid %v positive %v", idx, valid, pos)
	}
	if got := tensors.MustCopyFlatData[float32](outs[8]); !slices.Equal(got[:12], []float32{1, 1, 11, 11, 0, 0, 10, 10, 5, 5, 15, 15}) {
		t.Errorf("gathered boxes %v", got[:12])
	}
}

// TestSamplerRegistered decodes the RoI head's sampler.
func TestSamplerRegistered(t *testing.T) {
	v, err := registry.Default.Decode(registry.NewSpec(det.BBoxSamplers, "RandomSampler", map[string]any{
		"num": 512, "pos_fraction": 0.25,
	}))
	if err != nil {
		t.Fatal(err)
	}
	s := v.(*det.RandomSampler)
	if s.Num != 512 || s.NumExpectedPos() != 128 || s.NegPosUB != -1 || !s.AddGTAsProposals {
		t.Errorf("decoded %+v", s)
	}
	if _, err := registry.Default.Decode(registry.NewSpec(det.BBoxSamplers, "RandomSampler", map[string]any{"num": 256})); err == nil {
		t.Error("a sampler without pos_fraction was accepted")
	}
}

// TestSampleRPNScale samples 256 of the 63,000 anchors of an 800x1344 canvas (50x84
// locations, 15 anchors each: 48-bit keys, 247 prefix-count blocks), 30 positives and
// 2,000 ignored among them, for two images.
func TestSampleRPNScale(t *testing.T) {
	if testing.Short() {
		t.Skip("short")
	}
	s := &det.RandomSampler{Num: 256, PosFraction: 0.5, NegPosUB: -1}
	const n = 50 * 84 * 15
	inds := make([]int32, n)
	for i := range inds {
		switch {
		case i%2000 == 7:
			inds[i] = int32(i % 5) // 32 positives
		case i%31 == 3:
			inds[i] = det.AssignIgnored
		default:
			inds[i] = det.AssignNegative
		}
	}
	nPos := 0
	for _, g := range inds {
		if g >= 0 {
			nPos++
		}
	}
	res := runSample(t, s, 11, [][]int32{inds, inds})
	for _, r := range res {
		checkSample(t, "rpn scale", r, inds, nPos, 256-nPos)
	}
	if slices.Equal(res[0].indices, res[1].indices) {
		t.Error("the two images sampled the same anchors")
	}
}

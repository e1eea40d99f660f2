package det

import (
	"errors"
	"math/bits"

	"github.com/gomlx/gomlx/pkg/core/dtypes"
	. "github.com/gomlx/gomlx/pkg/core/graph"
	"github.com/gomlx/gomlx/pkg/core/shapes"

	"github.com/goselfsup/goselfsup/registry"
)

// BBoxSamplers is the registry namespace of box samplers: mmdet 2.x's BBOX_SAMPLERS, the
// namespace of a train_cfg's sampler.
const BBoxSamplers = "bbox_samplers"

// RandomSampler is mmdet 2.x's RandomSampler (mmdet/core/bbox/samplers/random_sampler.py
// and base_sampler.py) with static shapes: every image gets exactly Num slots. The R50-C4
// RPN samples 256 anchors at pos_fraction 0.5 without GT proposals, its RoI head 512
// proposals at 0.25 with the GT boxes prepended.
//
// Randomness. mmdet draws torch.randperm over the candidates; here each candidate gets an
// independent random key and the k candidates of the largest keys are taken, which is the
// same distribution (every k-subset of the candidates equally likely) but not the same
// draw as PyTorch's for any seed. The keys come from a GoMLX RNG state (Sample; the engine
// seeds the context's state from the run seed, so a run is reproducible run to run) or
// from the caller (SampleWithKeys), so the result is a deterministic function of them.
type RandomSampler struct {
	Num              int     `toml:"num" doc:"the number of boxes sampled per image (slots of the static output)" required:"true"`
	PosFraction      float64 `toml:"pos_fraction" doc:"at most int(num * pos_fraction) positives; negatives fill the rest" required:"true"`
	NegPosUB         float64 `toml:"neg_pos_ub" doc:"if >= 0, at most int(neg_pos_ub * max(1, positives)) negatives; -1: no bound"`
	AddGTAsProposals bool    `toml:"add_gt_as_proposals" doc:"prepend the GT boxes to the candidates, as positives of themselves (Prepare)"`
}

func init() {
	registry.Add(BBoxSamplers, "RandomSampler", "mmdet 2.x's random sampling of positive and negative boxes, to a fixed number per image",
		func() *RandomSampler { return &RandomSampler{PosFraction: -1, NegPosUB: -1, AddGTAsProposals: true} })
}

// Validate checks num and pos_fraction.
func (s *RandomSampler) Validate() error {
	var errs []error
	if s.Num < 1 {
		errs = append(errs, registry.FieldErrorf("num", "must be given, at least 1, got %d", s.Num))
	}
	if s.PosFraction < 0 || s.PosFraction > 1 {
		errs = append(errs, registry.FieldErrorf("pos_fraction", "must be given, in [0, 1], got %g", s.PosFraction))
	}
	return errors.Join(errs...)
}

// Build returns the validated sampler itself.
func (s *RandomSampler) Build(*registry.Env) (any, error) {
	if err := s.Validate(); err != nil {
		return nil, err
	}
	return s, nil
}

// NumExpectedPos is mmdet's num_expected_pos, int(num * pos_fraction).
func (s *RandomSampler) NumExpectedPos() int { return int(float64(s.Num) * s.PosFraction) }

// KeyBits is the number of random bits of a sampling key: keys lie in [0, 2^KeyBits).
const KeyBits = 31

// SampleKeys draws sampling keys [dims...] Int64 in [0, 2^KeyBits) from a GoMLX RNG state
// (graph.RNGStateFromSeed, or the context's state through ctx.RandomIntN(g, 1<<KeyBits,
// shape)), returning the advanced state.
func SampleKeys(rngState *Node, dims ...int) (newState, keys *Node) {
	return RandomIntN(rngState, int64(1)<<KeyBits, shapes.Make(dtypes.Int64, dims...))
}

// SampleResult is mmdet's SamplingResult as static slots: Num per image, the sampled
// positives first, then the sampled negatives, then empty slots. Within each group the
// boxes are in increasing index order (mmdet: the random permutation's order); nothing
// downstream depends on it.
type SampleResult struct {
	// Indices is [..., Num] Int32: the sampled rows of the candidates (the assign result's
	// rows; after Prepare with add_gt_as_proposals, the GT rows come first); 0 in empty slots.
	Indices *Node
	// Valid is [..., Num] Bool: the slot holds a sample (mmdet's loss weights: fewer
	// candidates than Num leave empty slots).
	Valid *Node
	// Positive is [..., Num] Bool: the slot holds a positive.
	Positive *Node
	// NumPos and NumNeg are [...] Int32: the sampled positives and negatives per image.
	NumPos, NumNeg *Node
}

// Sample draws keys with SampleKeys and samples with them; gtInds is [..., N] Int32, an
// AssignResult's GTInds. It returns the advanced RNG state.
func (s *RandomSampler) Sample(rngState, gtInds *Node) (newState *Node, r SampleResult) {
	newState, keys := SampleKeys(rngState, gtInds.Shape().Dimensions...)
	return newState, s.SampleWithKeys(keys, gtInds)
}

// SampleWithKeys is mmdet 2.x's BaseSampler.sample / RandomSampler._sample_pos and
// _sample_neg for gtInds [..., N] Int32 (candidates: positives gtInds >= 0, negatives
// gtInds == AssignNegative; ignored rows are never drawn) and keys [..., N] integer in
// [0, 2^KeyBits), random and independent (SampleKeys).
//
// Per image: k_pos = min(#positives, int(num * pos_fraction)) positives are drawn, those of
// the k_pos largest keys, uniformly among the positives (all of them if there are at most
// k_pos); then k_neg = num - k_pos (with neg_pos_ub >= 0, at most
// int(neg_pos_ub * max(1, k_pos))) negatives likewise; fewer negatives than k_neg are all
// taken and the remaining slots stay empty. Ties between equal keys go to the higher
// index, so the result is deterministic.
//
// Static selection without sort: the k-th largest key is found by a bitwise search
// (31 + log2(N) masked counts over the row), the selected candidates are compacted into
// slots by a prefix count (two triangular matrix products) and a scatter.
func (s *RandomSampler) SampleWithKeys(keys, gtInds *Node) SampleResult {
	if !keys.Shape().Equal(shapes.Make(keys.DType(), gtInds.Shape().Dimensions...)) || !keys.DType().IsInt() {
		panicf("SampleWithKeys: keys must be integers shaped like gtInds %s, got %s", gtInds.Shape(), keys.Shape())
	}
	g := gtInds.Graph()
	lead := gtInds.Shape().Dimensions[:gtInds.Rank()-1]
	n := gtInds.Shape().Dim(-1)
	b := prod(lead)
	num := s.Num
	inds := Reshape(ConvertDType(gtInds, dtypes.Int32), b, n)
	i32 := func(v int) *Node { return Scalar(g, dtypes.Int32, v) }

	// Distinct keys: the random bits above, the index below.
	idxBits := bits.Len(uint(n - 1))
	idx := Iota(g, shapes.Make(dtypes.Int64, b, n), 1)
	k := Add(MulScalar(Reshape(ConvertDType(keys, dtypes.Int64), b, n), float64(int64(1)<<idxBits)), idx)
	keyBits := KeyBits + idxBits

	pos := GreaterOrEqual(inds, i32(0))
	neg := Equal(inds, i32(AssignNegative))
	count := func(m *Node) *Node { return ReduceSum(ConvertDType(m, dtypes.Int32), -1) } // [b]

	kPos := Min(count(pos), i32(s.NumExpectedPos()))
	selPos := selectLargest(k, pos, kPos, keyBits)
	nPos := count(selPos)
	kNeg := Sub(i32(num), nPos)
	if s.NegPosUB >= 0 {
		p := ConvertDType(Max(nPos, i32(1)), dtypes.Float64)
		ub := ConvertDType(Floor(MulScalar(p, s.NegPosUB)), dtypes.Int32)
		kNeg = Min(kNeg, ub)
	}
	selNeg := selectLargest(k, neg, kNeg, keyBits)
	nNeg := count(selNeg)

	// Slots: positives 0.., negatives after them, the rest to a spare slot num.
	nPosCol := Reshape(nPos, b, 1)
	slot := Where(selPos, Sub(prefixCount(selPos), i32(1)),
		Where(selNeg, Add(nPosCol, Sub(prefixCount(selNeg), i32(1))), i32(num)))
	sel := LogicalOr(selPos, selNeg)
	rowBase := MulScalar(Iota(g, shapes.Make(dtypes.Int32, b, n), 0), float64(num+1))
	flat := Reshape(Add(slot, rowBase), b*n, 1)
	upd := Reshape(Where(sel, Add(ConvertDType(idx, dtypes.Int32), i32(1)), i32(0)), b*n)
	out := ScatterSum(Zeros(g, shapes.Make(dtypes.Int32, b*(num+1))), flat, upd, false, false)
	out = Slice(Reshape(out, b, num+1), AxisRange(), AxisRange(0, num))
	out = Sub(out, i32(1)) // -1: empty

	valid := GreaterOrEqual(out, i32(0))
	slots := Iota(g, shapes.Make(dtypes.Int32, b, num), 1)
	outDims := append(append([]int{}, lead...), num)
	return SampleResult{
		Indices:  Reshape(Max(out, i32(0)), outDims...),
		Valid:    Reshape(valid, outDims...),
		Positive: Reshape(LogicalAnd(valid, LessThan(slots, nPosCol)), outDims...),
		NumPos:   Reshape(nPos, lead...),
		NumNeg:   Reshape(nNeg, lead...),
	}
}

// selectLargest marks, per row of keys [b, n] (distinct, in [0, 2^keyBits)), the
// candidates (cand [b, n] Bool) of the k [b] largest keys: all candidates if there are at
// most k, none if k <= 0. It finds t, the largest value with at least k candidate keys
// >= t, bit by bit from the top, so it is the k-th largest candidate key.
func selectLargest(keys, cand, k *Node, keyBits int) *Node {
	g := keys.Graph()
	b := keys.Shape().Dim(0)
	km := Where(cand, keys, Scalar(g, dtypes.Int64, -1))
	kc := Reshape(k, b, 1)
	t := Zeros(g, shapes.Make(dtypes.Int64, b, 1))
	for bit := keyBits - 1; bit >= 0; bit-- {
		tt := Add(t, Scalar(g, dtypes.Int64, int64(1)<<bit))
		cnt := Reshape(ReduceSum(ConvertDType(GreaterOrEqual(km, tt), dtypes.Int32), -1), b, 1)
		t = Where(GreaterOrEqual(cnt, kc), tt, t)
	}
	return LogicalAnd(LogicalAnd(cand, GreaterOrEqual(km, t)), GreaterThan(kc, Scalar(g, dtypes.Int32, 0)))
}

// prefixBlock is the block length of prefixCount: its partial counts stay exact integers
// even in TF32 or bfloat16 matrix products.
const prefixBlock = 256

// prefixCount is the inclusive running count of mask [b, n] Bool along n, Int32: blocks
// of prefixBlock are counted by a product with a triangular matrix, the block totals
// likewise, and added. O(n * prefixBlock), exact in float32 (n < 2^24), and free of
// CumSum's full-length reduce window.
func prefixCount(mask *Node) *Node {
	g := mask.Graph()
	b, n := mask.Shape().Dim(0), mask.Shape().Dim(1)
	blk := min(prefixBlock, n)
	nb := (n + blk - 1) / blk
	x := ConvertDType(mask, dtypes.Float32)
	if nb*blk > n {
		x = Concatenate([]*Node{x, Zeros(g, shapes.Make(dtypes.Float32, b, nb*blk-n))}, -1)
	}
	tri := func(size int, strict bool) *Node { // [i, j] = 1 where i <= j (i < j when strict)
		i := Iota(g, shapes.Make(dtypes.Int32, size, size), 0)
		j := Iota(g, shapes.Make(dtypes.Int32, size, size), 1)
		if strict {
			return ConvertDType(LessThan(i, j), dtypes.Float32)
		}
		return ConvertDType(LessOrEqual(i, j), dtypes.Float32)
	}
	within := Reshape(Dot(Reshape(x, b*nb, blk), tri(blk, false)), b, nb, blk)
	totals := Reshape(Slice(within, AxisRange(), AxisRange(), AxisElem(blk-1)), b, nb)
	offsets := Dot(totals, tri(nb, true)) // [b, nb]: the counts of the earlier blocks
	all := Reshape(Add(within, Reshape(offsets, b, nb, 1)), b, nb*blk)
	return ConvertDType(Round(Slice(all, AxisRange(), AxisRange(0, n))), dtypes.Int32)
}

// Prepare is BaseSampler.sample's add_gt_as_proposals step when the sampler has it
// (otherwise it returns its inputs and no GT rows): the GT boxes [..., G, 4] are prepended
// to bboxes [..., P, 4], and the assign result gets the GT rows first (mmdet's
// AssignResult.add_gt_): a valid GT row is a positive of itself with max overlap 1 and its
// label, a padded one (gtValid false) AssignIgnored with overlap 0 and label -1, so that it
// is never sampled (mmdet adds nothing for an image without GT). isGT [..., G + P] Bool
// marks the valid GT rows (mmdet's gt_flags). gtValid and gtLabels may be nil (all valid;
// no labels: the result's Labels stays nil and assign.Labels must be nil too).
func (s *RandomSampler) Prepare(bboxes, gtBoxes, gtValid, gtLabels *Node, assign AssignResult) (boxes *Node, r AssignResult, isGT *Node) {
	if !s.AddGTAsProposals {
		return bboxes, assign, boolConst(assign.GTInds.Graph(), false, assign.GTInds.Shape().Dimensions...)
	}
	return AddGTAsProposals(bboxes, gtBoxes, gtValid, gtLabels, assign)
}

// AddGTAsProposals prepends the GT rows unconditionally; see Prepare.
func AddGTAsProposals(bboxes, gtBoxes, gtValid, gtLabels *Node, assign AssignResult) (boxes *Node, r AssignResult, isGT *Node) {
	g := bboxes.Graph()
	ng := gtBoxes.Shape().Dim(-2)
	lead := gtBoxes.Shape().Dimensions[:gtBoxes.Rank()-2]
	gdims := append(append([]int{}, lead...), ng)
	ok := boolConst(g, true, gdims...)
	if gtValid != nil {
		ok = Reshape(gtValid, gdims...)
	}
	i32 := func(v int) *Node { return Scalar(g, dtypes.Int32, v) }
	self := Iota(g, shapes.Make(dtypes.Int32, gdims...), len(lead))
	r.GTInds = Concatenate([]*Node{Where(ok, self, i32(AssignIgnored)), assign.GTInds}, -1)
	dt := assign.MaxOverlaps.DType()
	r.MaxOverlaps = Concatenate([]*Node{ConvertDType(ok, dt), assign.MaxOverlaps}, -1)
	switch {
	case gtLabels != nil && assign.Labels != nil:
		lab := Reshape(ConvertDType(gtLabels, dtypes.Int32), gdims...)
		r.Labels = Concatenate([]*Node{Where(ok, lab, i32(-1)), assign.Labels}, -1)
	case gtLabels != nil || assign.Labels != nil:
		panicf("AddGTAsProposals: give gtLabels exactly when the assign result has labels")
	}
	boxes = Concatenate([]*Node{ConvertDType(gtBoxes, bboxes.DType()), bboxes}, -2)
	isGT = Concatenate([]*Node{ok, boolConst(assign.GTInds.Graph(), false, assign.GTInds.Shape().Dimensions...)}, -1)
	return boxes, r, isGT
}

// GatherRows picks rows of x [..., M, D...] by idx [..., K] integer (the same leading
// axes), giving [..., K, D...]: the sampled boxes, targets or labels of a SampleResult.
func GatherRows(x, idx *Node) *Node {
	g := x.Graph()
	r := idx.Rank() - 1
	lead := idx.Shape().Dimensions[:r]
	m, kk := x.Shape().Dim(r), idx.Shape().Dim(-1)
	b := prod(lead)
	rest := x.Shape().Dimensions[r+1:]
	flatX := Reshape(x, append([]int{b * m}, rest...)...)
	base := MulScalar(Iota(g, shapes.Make(dtypes.Int32, b, kk), 0), float64(m))
	flatIdx := Reshape(Add(ConvertDType(Reshape(idx, b, kk), dtypes.Int32), base), b*kk, 1)
	out := Gather(flatX, flatIdx)
	return Reshape(out, append(append(append([]int{}, lead...), kk), rest...)...)
}

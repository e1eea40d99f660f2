package det

import (
	"math"
	"math/bits"

	"github.com/gomlx/gomlx/pkg/core/dtypes"
	. "github.com/gomlx/gomlx/pkg/core/graph"
	"github.com/gomlx/gomlx/pkg/core/shapes"
)

// TopKMask marks, per row, the k highest scores among the valid entries: scores [..., N]
// float (compared as float32), valid [..., N] Bool or nil (all valid); [..., N] Bool. Equal
// scores go to the higher index (mmdet's sort leaves their order unspecified). Every valid
// entry is marked when there are at most k. It is mmdet's topk of nms_pre scores as a
// mask, built like RandomSampler's selection: the k-th largest key by a bitwise search
// over order-preserving integer keys (float32OrderKey, with the index below them), without
// a sort, which GoMLX v0.26 lacks.
func TopKMask(scores, valid *Node, k int) *Node {
	g := scores.Graph()
	lead := scores.Shape().Dimensions[:scores.Rank()-1]
	n := scores.Shape().Dim(-1)
	b := prod(lead)
	key := float32OrderKey(ConvertDType(Reshape(scores, b, n), dtypes.Float32))
	idxBits := bits.Len(uint(n - 1))
	idx := Iota(g, shapes.Make(dtypes.Int64, b, n), 1)
	key = Add(MulScalar(key, float64(int64(1)<<idxBits)), idx)
	cand := boolConst(g, true, b, n)
	if valid != nil {
		cand = Reshape(valid, b, n)
	}
	kk := BroadcastToDims(Scalar(g, dtypes.Int32, k), b)
	mask := selectLargest(key, cand, kk, 32+idxBits)
	return Reshape(mask, scores.Shape().Dimensions...)
}

// float32OrderKey maps float32 values x [b, n] to Int64 keys in [0, 2^32) that order as the
// values do, equal keys for equal values (-0 and +0 too): the IEEE bits without the sign
// (exponent and mantissa, computed arithmetically: GoMLX's pure-Go backend has no Bitcast)
// above 2^31 for x >= 0, mirrored below it for x < 0.
func float32OrderKey(x *Node) *Node {
	g := x.Graph()
	f := ConvertDType(x, dtypes.Float64) // exact
	a := Abs(f)
	c := func(v float64) *Node { return Scalar(g, dtypes.Float64, v) }
	// e = floor(log2(a)) for normal values, corrected by one either way.
	safe := Max(a, c(math.SmallestNonzeroFloat32))
	e := Floor(Div(Log(safe), c(math.Ln2)))
	two := c(2)
	e = Where(GreaterThan(Pow(two, e), safe), SubScalar(e, 1), e)
	e = Where(LessOrEqual(Pow(two, AddScalar(e, 1)), safe), AddScalar(e, 1), e)
	normal := GreaterOrEqual(a, c(0x1p-126))
	mant := MulScalar(SubScalar(Div(a, Pow(two, e)), 1), 0x1p23)
	magNormal := Add(MulScalar(AddScalar(e, 127), 0x1p23), mant)
	magSub := MulScalar(a, 0x1p149) // subnormals and zero: the mantissa alone
	mag := Where(normal, magNormal, magSub)
	key := Where(GreaterOrEqual(f, ZerosLike(f)), AddScalar(mag, 0x1p31), Sub(c(0x1p31-1), mag))
	return ConvertDType(key, dtypes.Int64)
}

// compact returns, per row of mask [b, n] Bool, the indices of its true entries in increasing
// order in k slots, [b, k] Int32, and which slots hold one, [b, k] Bool (rows with more than
// k true entries keep their first k): a prefix count and a scatter, as RandomSampler's
// slots.
func compact(mask *Node, k int) (idx, ok *Node) {
	g := mask.Graph()
	b, n := mask.Shape().Dim(0), mask.Shape().Dim(1)
	i32 := func(v int) *Node { return Scalar(g, dtypes.Int32, v) }
	pos := Sub(prefixCount(mask), i32(1))
	slot := Where(LogicalAnd(mask, LessThan(pos, i32(k))), pos, i32(k)) // the rest to a spare slot k
	rowBase := MulScalar(Iota(g, shapes.Make(dtypes.Int32, b, n), 0), float64(k+1))
	flat := Reshape(Add(slot, rowBase), b*n, 1)
	upd := Reshape(Where(mask, AddScalar(Iota(g, shapes.Make(dtypes.Int32, b, n), 1), 1), i32(0)), b*n)
	out := ScatterSum(Zeros(g, shapes.Make(dtypes.Int32, b*(k+1))), flat, upd, false, false)
	out = Sub(Slice(Reshape(out, b, k+1), AxisRange(), AxisRange(0, k)), i32(1)) // -1: empty
	return Max(out, i32(0)), GreaterOrEqual(out, i32(0))
}

// TopK is TopKMask's entries gathered into k slots: their indices [..., k] Int32, in
// increasing index order (not by score), and which slots hold one [..., k] Bool (fewer valid
// entries than k leave empty slots, index 0). Work after it (decoding, NMS) then runs on k
// entries instead of N.
func TopK(scores, valid *Node, k int) (idx, ok *Node) {
	lead := scores.Shape().Dimensions[:scores.Rank()-1]
	n := scores.Shape().Dim(-1)
	b := prod(lead)
	mask := Reshape(TopKMask(scores, valid, k), b, n)
	idx, ok = compact(mask, k)
	dims := append(append([]int{}, lead...), k)
	return Reshape(idx, dims...), Reshape(ok, dims...)
}

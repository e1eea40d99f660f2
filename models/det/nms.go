package det

import (
	"math"

	"github.com/gomlx/gomlx/pkg/core/dtypes"
	. "github.com/gomlx/gomlx/pkg/core/graph"
	"github.com/gomlx/gomlx/pkg/core/shapes"
)

// NMS is greedy non-maximum suppression with a static output: torchvision.ops.nms and mmcv's
// nms (offset 0) on the boxes whose valid is true, truncated to the first maxOut kept boxes.
//
// Shapes: boxes [..., N, 4] (x1, y1, x2, y2), scores [..., N], valid [..., N] bool; any leading
// axes are independent problems (images). It returns keep [..., maxOut] int32, indices into
// the N boxes in the order greedy NMS keeps them (score descending), and keepValid [...,
// maxOut] bool, true for the first min(maxOut, number kept) slots; the other slots hold index
// 0. maxOut may exceed N.
//
// Semantics: candidates are visited by score descending, equal scores by ascending index (the
// order of a stable descending sort: the tie rule). torchvision's and mmcv's CPU kernels call
// scores.sort(0, descending) without stable=true, so their order of equal scores is PyTorch's
// CPU sort's: std::sort, which keeps equal values in index order for up to 16 elements (its
// insertion sort; checked with PyTorch 1.13) and not beyond, so with ties among more than 16
// boxes their kept indices depend on the sort's internals and may differ from these. Each
// visited candidate that is still alive is kept and kills every alive box whose IoU with it is
// > iouThr (strictly), the IoU computed as those kernels do: inter / (area_i + area_j -
// inter), no +1, in the boxes' dtype, so a NaN IoU (two boxes of zero area) suppresses
// nothing. The comparison is with iouThr as a float64, as torchvision
// compares (mmcv rounds the threshold to float32 first; the two differ only for an IoU equal
// to float32(iouThr) when that rounds up, which is not the case for 0.5 or 0.7). Invalid
// boxes are never kept and suppress nothing. The boxes get no gradient (StopGradient).
//
// Algorithm and bound: greedy NMS unrolled into exactly maxOut steps. Step k takes the first
// alive candidate (the maximum alive score, then the smallest index among the alive ones with
// that score: a ReduceMax and a ReduceMin, so neither a sort nor a while loop is needed),
// records it, computes its IoU row against all N boxes and removes it and the boxes it
// suppresses from the alive set. The first maxOut boxes greedy NMS keeps depend only on these
// maxOut steps, so the result is exact for every input (not just when some iteration count
// happens to converge), with no N x N matrix and no sort: O(maxOut * N) work and O(N) memory
// per problem, but maxOut sequential steps (about 30 graph nodes each, so the graph grows
// linearly with maxOut: 2,000 steps for RPN training proposals is a 60k-node graph that XLA
// compiles once; on the pure-Go backend of a loaded 2-core machine, N = 12,000 and maxOut =
// 2,000 build and compile in about 1 s and run in about 1.3 s).
//
// Where results can differ from the dynamic versions: NaN scores (never kept here); GPU kernels
// of torchvision/mmcv (they sort with an unstable sort, so equal scores may be visited in
// another order); and, against mmcv's nms with score_threshold > 0 or max_num, nothing: pass
// valid = score > thr and maxOut = max_num.
func NMS(boxes, scores, valid *Node, iouThr float64, maxOut int) (keep, keepValid *Node) {
	if scores.Rank() < 1 || boxes.Rank() != scores.Rank()+1 || boxes.Shape().Dim(-1) != 4 {
		panic("det.NMS: want boxes [..., N, 4] and scores [..., N]")
	}
	if !valid.Shape().Equal(shapes.Make(dtypes.Bool, scores.Shape().Dimensions...)) {
		panic("det.NMS: valid must be bool and shaped like scores")
	}
	if maxOut < 1 {
		panic("det.NMS: maxOut must be >= 1")
	}
	g := boxes.Graph()
	lead := scores.Shape().Dimensions[:scores.Rank()-1]
	n := scores.Shape().Dim(-1)
	b := 1
	for _, d := range lead {
		b *= d
	}
	dt := boxes.DType()
	bx := Reshape(StopGradient(boxes), b, n, 4)
	sc := Reshape(StopGradient(ConvertDType(scores, dt)), b, n)
	alive := Reshape(valid, b, n)

	x1, y1, x2, y2 := cornerCoords(bx) // [b, n]
	area := Mul(Sub(x2, x1), Sub(y2, y1))
	iota := Iota(g, shapes.Make(dtypes.Int32, b, n), 1)
	batch := Iota(g, shapes.Make(dtypes.Int32, b), 0)
	none := Scalar(g, dtypes.Int32, n)
	zeroI := ScalarZero(g, dtypes.Int32)
	zero := ScalarZero(g, dt)
	negInf := Infinity(g, dt, -1)
	thr := thresholdBelow(g, dt, iouThr)

	keeps := make([]*Node, maxOut)
	oks := make([]*Node, maxOut)
	for k := range maxOut {
		best := ReduceMax(Where(alive, sc, negInf), 1) // [b]
		first := LogicalAnd(alive, Equal(sc, ExpandAxes(best, 1)))
		i := ReduceMin(Where(first, iota, none), 1) // [b], n when nothing is alive
		ok := LessThan(i, none)
		i = Where(ok, i, zeroI)
		keeps[k], oks[k] = i, ok
		if k == maxOut-1 {
			break // the last step's suppression is never used
		}
		box := Gather(bx, Stack([]*Node{batch, i}, 1))         // [b, 4]
		bx1, by1, bx2, by2 := cornerCoords(ExpandAxes(box, 1)) // [b, 1]
		w := Max(zero, Sub(Min(bx2, x2), Max(bx1, x1)))
		h := Max(zero, Sub(Min(by2, y2), Max(by1, y1)))
		inter := Mul(w, h)
		iarea := Mul(Sub(bx2, bx1), Sub(by2, by1))
		ovr := Div(inter, Sub(Add(iarea, area), inter)) // [b, n]
		gone := LogicalOr(GreaterThan(ovr, thr), Equal(iota, ExpandAxes(i, 1)))
		alive = LogicalAnd(alive, LogicalNot(gone))
	}
	out := append(append([]int{}, lead...), maxOut)
	keep = Reshape(Stack(keeps, 1), out...)
	keepValid = Reshape(Stack(oks, 1), out...)
	return keep, keepValid
}

// thresholdBelow is the largest value of dtype that is <= thr, so that, for x of dtype,
// x > result exactly when float64(x) > thr.
func thresholdBelow(g *Graph, dt dtypes.DType, thr float64) *Node {
	if dt == dtypes.Float32 {
		f := float32(thr)
		if float64(f) > thr {
			f = math.Nextafter32(f, float32(math.Inf(-1)))
		}
		return Const(g, f)
	}
	return Scalar(g, dt, thr)
}

// BatchedNMS is mmcv's batched_nms (and torchvision.ops.batched_nms) with a static output:
// NMS within each class, done as one NMS on boxes offset by class * (max coordinate + 1) so
// that boxes of different classes never overlap. Shapes and outputs as NMS, with classes [...,
// N] (any integer or float dtype; the class, or level, of each box). The maximum coordinate is
// taken over the valid boxes of each problem (mmcv takes boxes.max() over the boxes it is
// given, which after its score filter are the valid ones), 0 when none is valid.
//
// Exactness: it computes what mmcv's coordinate-offset path computes, in the same dtype (so the
// offset's rounding of the coordinates is reproduced too). mmcv switches to a per-class loop
// for 10,000 boxes or more (split_thr), and torchvision for more than 1,000 boxes on the CPU
// (4,000 numbers); those paths compute IoUs from unshifted coordinates, so a pair whose IoU
// rounds across iouThr only after shifting can be decided differently. The kept order is score
// descending, ties by index, as NMS; mmcv's per-class path re-sorts the kept boxes by score
// with an unstable sort.
func BatchedNMS(boxes, scores, classes, valid *Node, iouThr float64, maxOut int) (keep, keepValid *Node) {
	if classes.Rank() != scores.Rank() {
		panic("det.BatchedNMS: classes must be shaped like scores")
	}
	dt := boxes.DType()
	g := boxes.Graph()
	bx := StopGradient(boxes)
	vb := BroadcastToDims(ExpandAxes(valid, -1), bx.Shape().Dimensions...)
	maxCoord := ReduceMax(Where(vb, bx, Infinity(g, dt, -1)), -1, -2) // [...]
	anyValid := GreaterThan(ReduceMax(ConvertDType(valid, dtypes.Int32), -1), ScalarZero(g, dtypes.Int32))
	maxCoord = Where(anyValid, maxCoord, ZerosLike(maxCoord))
	one := ScalarOne(g, dt)
	offsets := Mul(ConvertDType(StopGradient(classes), dt), ExpandAxes(Add(maxCoord, one), -1)) // [..., N]
	shifted := Add(bx, ExpandAxes(offsets, -1))
	return NMS(shifted, scores, valid, iouThr, maxOut)
}

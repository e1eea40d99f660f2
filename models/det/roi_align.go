package det

import (
	"github.com/gomlx/gomlx/pkg/core/dtypes"
	. "github.com/gomlx/gomlx/pkg/core/graph"
	"github.com/gomlx/gomlx/pkg/core/shapes"
)

// RoIAlign is torchvision.ops.roi_align / mmcv's RoIAlign (pool_mode "avg") on channels-last
// features, with a static shape.
//
// Shapes: feat [B, H, W, C] (NHWC, the repository's layout), rois [R, 5] = (batch index, x1,
// y1, x2, y2) in image coordinates (the batch index is truncated to an integer and clamped to
// [0, B)); the result is [R, outH, outW, C] in feat's dtype.
//
// Semantics, per ROI: start = box * spatialScale - 0.5 when aligned (- 0 otherwise), size = end
// - start (at least 1 when not aligned), bin = size / out; each bin averages grid_h x grid_w
// bilinear samples at start + p * bin + (i + 0.5) * bin / grid, where grid = samplingRatio when
// samplingRatio > 0, and ceil(size / out) otherwise (the adaptive grid, 0 for an empty ROI). A
// sample is zero when y < -1 or y > H (x likewise); y <= 0 is read at 0; when floor(y) >= H - 1
// it reads row H - 1 only. The sum is divided by max(grid_h * grid_w, 1).
//
// Bound: the adaptive grid is data-dependent, so with samplingRatio = 0 every bin has a fixed
// maxGrid x maxGrid sample slots, of which those beyond the ROI's grid are masked out; the grid
// used is min(ceil(size / out), maxGrid) per axis. The result equals torchvision's whenever
// ceil(size / out) <= maxGrid on both axes, i.e. ROI sides up to maxGrid * out feature pixels
// (maxGrid * out / spatialScale image pixels: 4 * 14 * 16 = 896 for the C4 head with maxGrid
// 4); a larger ROI is sampled as with sampling_ratio = maxGrid on that axis. With samplingRatio
// > 0, maxGrid is ignored and the result is exact.
//
// Cost: a Gather of R * outH * outW * G^2 * 4 feature vectors of C (G = maxGrid, or
// samplingRatio), weighted and summed over the G^2 * 4 corners; unless the backend fuses the
// Gather into the reduction, that many C-vectors are materialised: for the C4 head (512 ROIs
// per image, 14 x 14, G = 4, C = 1,024) 6.4M vectors, 26 GB in float32 per image, so on XLA
// check that the fusion happens, or pick G from the largest ROI the canvas allows. Measured on
// the pure-Go backend (loaded 2-core machine): 64 ROIs, 14 x 14, G = 4, C = 32, forward and
// backward, about 1 s.
//
// Gradient: to feat only (rois are wrapped in StopGradient), through Gather, whose gradient is
// a ScatterSum of the weighted output gradient: torchvision's backward. It differs from
// torchvision only in the order of floating-point additions.
func RoIAlign(feat, rois *Node, outH, outW int, spatialScale float64, samplingRatio int, aligned bool, maxGrid int) *Node {
	if feat.Rank() != 4 || rois.Rank() != 2 || rois.Shape().Dim(1) != 5 {
		panic("det.RoIAlign: want feat [B, H, W, C] and rois [R, 5]")
	}
	return roiAlignLevels([]*Node{feat}, []float64{spatialScale}, rois, nil, outH, outW, samplingRatio, aligned, maxGrid)
}

// roiAlignLevels is RoIAlign with each RoI pooled from its own map: feats [B, H_l, W_l, C]
// (one per level, the same B and C), scales the levels' spatial scales, level [R] Int32 the
// level of each RoI (nil with one map). The maps are flattened into one table and every
// RoI's samples gathered from its level's part, with its level's scale and size: one
// gather for all RoIs, whatever the number of levels, and the same arithmetic as one
// RoIAlign per level.
func roiAlignLevels(feats []*Node, scales []float64, rois, level *Node, outH, outW int, samplingRatio int, aligned bool, maxGrid int) *Node {
	if outH < 1 || outW < 1 {
		panic("det.RoIAlign: output size must be positive")
	}
	grid := samplingRatio
	if grid <= 0 {
		grid = maxGrid
	}
	if grid < 1 {
		panic("det.RoIAlign: maxGrid must be >= 1 when samplingRatio is 0")
	}
	g := rois.Graph()
	dt := feats[0].DType()
	nb, c := feats[0].Shape().Dim(0), feats[0].Shape().Dim(3)
	r := rois.Shape().Dim(0)
	rs := ConvertDType(StopGradient(rois), dt)

	// The levels' sizes, scales and offsets in the table, per RoI.
	var tables []*Node
	var hs, ws, bases []int32
	var sc []float64
	base := 0
	for l, f := range feats {
		d := f.Shape().Dimensions
		if f.Rank() != 4 || d[0] != nb || d[3] != c {
			panicf("det.RoIAlign: map %d is %s, want [%d, H, W, %d]", l, f.Shape(), nb, c)
		}
		tables = append(tables, Reshape(f, d[0]*d[1]*d[2], c))
		hs, ws, bases, sc = append(hs, int32(d[1])), append(ws, int32(d[2])), append(bases, int32(base)), append(sc, scales[l])
		base += d[0] * d[1] * d[2]
	}
	table := tables[0]
	if len(tables) > 1 {
		table = Concatenate(tables, 0)
	}
	perRoI := func(v *Node) *Node { // v [L] -> [R], each RoI's level's value
		if level == nil {
			return BroadcastToDims(Reshape(v, 1), r)
		}
		return Gather(v, Reshape(level, r, 1))
	}
	levelH, levelW := perRoI(Const(g, hs)), perRoI(Const(g, ws))
	levelBase := perRoI(Const(g, bases))
	scale := perRoI(ConvertDType(Const(g, sc), dt))

	batch := ConvertDType(lastElem(rs, 0), dtypes.Int32)
	batch = Max(Min(batch, Scalar(g, dtypes.Int32, nb-1)), ScalarZero(g, dtypes.Int32))
	offset := 0.0
	if aligned {
		offset = 0.5
	}
	start := func(i int) *Node { return Sub(Mul(lastElem(rs, i), scale), Scalar(g, dt, offset)) }
	x0, y0, x1, y1 := start(1), start(2), start(3), start(4)
	sizeW, sizeH := Sub(x1, x0), Sub(y1, y0)
	if !aligned {
		sizeW, sizeH = MaxScalar(sizeW, 1.0), MaxScalar(sizeH, 1.0)
	}

	ys, wy, ny := axisSamples(y0, sizeH, outH, levelH, samplingRatio, grid) // [R, outH, G, 2], ny [R]
	xs, wx, nx := axisSamples(x0, sizeW, outW, levelW, samplingRatio, grid) // [R, outW, G, 2]

	// Row indices [R, outH, outW, G, G, 2, 2] into the table, base + (batch * H + y) * W +
	// x, and weights wy * wx.
	full := []int{r, outH, outW, grid, grid, 2, 2}
	rowStart := Add(levelBase, Mul(Mul(batch, levelH), levelW)) // [R]
	yi := Mul(Reshape(ys, r, outH, 1, grid, 1, 2, 1), Reshape(levelW, r, 1, 1, 1, 1, 1, 1))
	xi := Reshape(xs, r, 1, outW, 1, grid, 1, 2)
	idx := BroadcastToDims(Add(Add(yi, xi), Reshape(rowStart, r, 1, 1, 1, 1, 1, 1)), full...)
	// The sampling geometry depends on the rois only; stopping its gradient here keeps the
	// backward pass from entering it (GoMLX's autodiff would otherwise reach Ceil, which has
	// no gradient, when the rois come from variables, as a detector's proposals do).
	weight := StopGradient(Mul(Reshape(wy, r, outH, 1, grid, 1, 2, 1), Reshape(wx, r, 1, outW, 1, grid, 1, 2)))

	s := grid * grid * 4
	vals := Reshape(Gather(table, Reshape(idx, r*outH*outW*s, 1)), r, outH, outW, s, c) // [R, outH, outW, S, C]
	sum := ReduceSum(Mul(vals, Reshape(weight, r, outH, outW, s, 1)), 3)                // [R, outH, outW, C]
	count := StopGradient(MaxScalar(Mul(ny, nx), 1.0))                                  // [R]
	return Div(sum, Reshape(count, r, 1, 1, 1))
}

// axisSamples computes, along one axis of the feature map of size n, the bilinear taps of each
// ROI's samples: indices [R, out, G, 2] int32 (low, high), weights [R, out, G, 2] (zero for
// masked or out-of-range samples) and the number of samples per bin along the axis [R] (in the
// dtype of start).
func axisSamples(start, size *Node, out int, n *Node, samplingRatio, grid int) (idx, weight, count *Node) {
	g := start.Graph()
	dt := start.DType()
	r := start.Shape().Dim(0)
	bin := DivScalar(size, float64(out)) // [R]
	var cnt *Node
	if samplingRatio > 0 {
		cnt = BroadcastToDims(Scalar(g, dt, samplingRatio), r)
	} else {
		cnt = MinScalar(MaxScalar(Ceil(bin), 0.0), float64(grid))
	}
	p := ConvertDType(Iota(g, shapes.Make(dtypes.Int32, 1, out, 1), 1), dt)                  // [1, out, 1]
	i := AddScalar(ConvertDType(Iota(g, shapes.Make(dtypes.Int32, 1, 1, grid), 2), dt), 0.5) // [1, 1, G]
	st := Reshape(start, r, 1, 1)
	bn := Reshape(bin, r, 1, 1)
	cn := Reshape(cnt, r, 1, 1)
	// torchvision: start + p * bin + (i + .5) * bin / grid, left to right.
	y := Add(Add(st, Mul(p, bn)), Div(Mul(i, bn), MaxScalar(cn, 1.0))) // [R, out, G]
	inGrid := LessThan(AddScalar(i, -0.5), cn)                         // [R, 1, G]: slot i is one of the grid samples
	nr := Reshape(n, r, 1, 1)
	inRange := LogicalNot(LogicalOr(LessThan(y, Scalar(g, dt, -1.0)), GreaterThan(y, ConvertDType(nr, dt))))
	use := LogicalAnd(inRange, BroadcastToDims(inGrid, r, out, grid))

	zero := ScalarZero(g, dt)
	y = Where(LessOrEqual(y, zero), ZerosLike(y), y)
	y = Where(use, y, ZerosLike(y)) // keeps masked samples' indices in range
	low := ConvertDType(y, dtypes.Int32)
	last := BroadcastToDims(AddScalar(nr, -1), low.Shape().Dimensions...)
	edge := GreaterOrEqual(low, last)
	low = Where(edge, last, low)
	high := Where(edge, low, AddScalar(low, 1))
	y = Where(edge, ConvertDType(low, dt), y)
	ly := Sub(y, ConvertDType(low, dt))
	hy := OneMinus(ly)
	useF := ConvertDType(use, dt)
	idx = Stack([]*Node{low, high}, -1)
	weight = Stack([]*Node{Mul(hy, useF), Mul(ly, useF)}, -1)
	return idx, weight, cnt
}

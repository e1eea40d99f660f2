package det

import (
	. "github.com/gomlx/gomlx/pkg/core/graph"
)

// BoxIoU is the matrix of intersection over union of boxes a [..., N, 4] and b [..., M, 4]
// (the same leading axes), [..., N, M]: torchvision.ops.box_iou, or mmdet's bbox_overlaps in
// mode "iou" without offset. Boxes are (x1, y1, x2, y2) with no +1: area = (x2 - x1) * (y2 -
// y1), intersection = max(0, min(x2) - max(x1)) * max(0, min(y2) - max(y1)), IoU = inter /
// (area_a + area_b - inter), in that order of operations, so values equal torchvision's to
// the last bit where the backend rounds as PyTorch does.
//
// Where the union is not positive (two boxes of zero area, or degenerate boxes with x2 < x1),
// the IoU is 0 where torchvision gives NaN (0/0) and mmdet clamps the union to 1e-6 (which also
// gives 0); the gradient there is 0 too.
func BoxIoU(a, b *Node) *Node {
	inter, union := interUnion(a, b)
	pos := GreaterThan(union, ZerosLike(union))
	return Where(pos, Div(inter, Where(pos, union, OnesLike(union))), ZerosLike(inter))
}

// interUnion returns the intersection and union areas of a [..., N, 4] and b [..., M, 4],
// each [..., N, M].
func interUnion(a, b *Node) (inter, union *Node) {
	if a.Rank() < 2 || a.Rank() != b.Rank() || a.Shape().Dim(-1) != 4 || b.Shape().Dim(-1) != 4 {
		panic("det: boxes must be [..., N, 4] and [..., M, 4] with the same leading axes")
	}
	ae := ExpandAxes(a, a.Rank()-1) // [..., N, 1, 4]
	be := ExpandAxes(b, b.Rank()-2) // [..., 1, M, 4]
	ax1, ay1, ax2, ay2 := cornerCoords(ae)
	bx1, by1, bx2, by2 := cornerCoords(be)
	areaA := Mul(Sub(ax2, ax1), Sub(ay2, ay1))
	areaB := Mul(Sub(bx2, bx1), Sub(by2, by1))
	zero := ScalarZero(a.Graph(), a.DType())
	w := Max(Sub(Min(ax2, bx2), Max(ax1, bx1)), zero)
	h := Max(Sub(Min(ay2, by2), Max(ay1, by1)), zero)
	inter = Mul(w, h)
	union = Sub(Add(areaA, areaB), inter)
	return inter, union
}

// cornerCoords splits boxes [..., 4] into x1, y1, x2, y2, each [...] (coder.go's coords keeps the last axis).
func cornerCoords(boxes *Node) (x1, y1, x2, y2 *Node) {
	return lastElem(boxes, 0), lastElem(boxes, 1), lastElem(boxes, 2), lastElem(boxes, 3)
}

// lastElem is x[..., i], the last axis dropped.
func lastElem(x *Node, i int) *Node {
	specs := make([]SliceAxisSpec, x.Rank())
	for k := range specs {
		specs[k] = AxisRange()
	}
	specs[x.Rank()-1] = AxisElem(i)
	return Squeeze(Slice(x, specs...), x.Rank()-1)
}

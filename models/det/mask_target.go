package det

import (
	"github.com/gomlx/gomlx/pkg/core/dtypes"
	. "github.com/gomlx/gomlx/pkg/core/graph"
	"github.com/gomlx/gomlx/pkg/core/shapes"
)

// MaskTargets is mmdet 2.x's mask_target_single (BitmapMasks.crop_and_resize with
// binarize) for N RoI slots of a batch, with static shapes:
//
//   - rois [N, 4] (x1, y1, x2, y2) are positive RoIs in the resized image's coordinates;
//   - imgIdx [N] and gtIdx [N] (integers) are each RoI's image and assigned GT box;
//   - gtMasks [B, G, H, W] (any numeric dtype, 0 or 1) are the GT bitmaps on the batch's
//     padded canvas, zero beyond each image's masks;
//   - maskShape [B, 2] (h, w) is the size of each image's bitmaps in mmdet: gt_masks.height
//     and width, the image's pad_shape after mmdet's Pad (the masks are padded with the
//     image), at most (H, W).
//
// Each RoI is clipped to [0, w] x [0, h] of its image, the bitmap b*G+g is sampled by
// RoIAlign (spatial_scale 1, sampling_ratio 0, aligned, average) into maskSize x maskSize,
// and the result binarised with >= 0.5: [N, maskSize, maskSize] in rois' dtype, 0 or 1,
// without gradient. Padding slots get targets too (whatever their indices select); the loss
// weighs them out.
//
// Exactness. mmcv samples a bitmap of its own size (h, w): a sample within the last pixel's
// half (y in [h-1, h-0.5], the farthest a clipped aligned RoI reaches) reads row h-1 alone,
// while on the larger canvas it would interpolate with row h. So the bitmaps' row h and
// column w are first replaced by copies of row h-1 and column w-1 (per image), which makes
// the canvas sample exactly as mmcv's bitmap does, up to float rounding of the bilinear
// weights (which can only move a bin's average by an ulp; ties at exactly 0.5 could flip).
//
// Bound: the adaptive grid of an aligned RoIAlign with sampling_ratio 0 is ceil(side /
// maskSize) samples per bin and axis, data-dependent; the graph has maxGrid x maxGrid
// sample slots per bin, so targets are exact for RoI sides up to maxGrid * maskSize image
// pixels (224 for maxGrid 8 and 28) and sampled on a maxGrid grid per axis beyond (still a
// fine average of the bitmap over the bin, nearly always the same binary target: in the
// test, maxGrid 1 on RoIs up to 3x the bound changed 6 of 20,384 targets). The cost
// is a Gather of N * maskSize^2 * maxGrid^2 * 4 scalars (N = 128, maxGrid 8: 103M), so pick
// maxGrid for the memory at hand; maxGrid = ceil(max(H, W) / maskSize) is exact for every
// RoI of the canvas. The bitmaps also take B * G * H * W floats once converted (16 images
// of 100 GT masks on 800 x 1344: 6.9 GB in float32, 860 MB per device at 2 images).
func MaskTargets(rois, imgIdx, gtIdx, gtMasks, maskShape *Node, maskSize, maxGrid int) *Node {
	if rois.Rank() != 2 || rois.Shape().Dim(1) != 4 || gtMasks.Rank() != 4 {
		panic("det.MaskTargets: want rois [N, 4] and gtMasks [B, G, H, W]")
	}
	g := rois.Graph()
	dt := rois.DType()
	n := rois.Shape().Dim(0)
	d := gtMasks.Shape().Dimensions
	b, ng, h, w := d[0], d[1], d[2], d[3]

	// The replication runs in the bitmaps' own dtype (uint8: a quarter of float32's memory).
	masks := StopGradient(ConvertDType(maskEdgeReplicate(gtMasks, ConvertDType(maskShape, dtypes.Int32)), dt))
	img := ConvertDType(imgIdx, dtypes.Int32)
	img = Max(Min(img, Scalar(g, dtypes.Int32, b-1)), ScalarZero(g, dtypes.Int32))
	gt := ConvertDType(gtIdx, dtypes.Int32)
	gt = Max(Min(gt, Scalar(g, dtypes.Int32, ng-1)), ScalarZero(g, dtypes.Int32))

	size := ConvertDType(Gather(ConvertDType(maskShape, dt), Reshape(img, n, 1)), dt) // [N, 2] (h, w)
	mh, mw := Slice(size, AxisRange(), AxisElem(0)), Slice(size, AxisRange(), AxisElem(1))
	r := StopGradient(rois)
	zero := ZerosLike(mh)
	clip := func(i int, hi *Node) *Node {
		return Min(Max(Slice(r, AxisRange(), AxisElem(i)), zero), hi)
	}
	batch := ConvertDType(Add(MulScalar(img, ng), gt), dt)
	rois5 := Concatenate([]*Node{Reshape(batch, n, 1), clip(0, mw), clip(1, mh), clip(2, mw), clip(3, mh)}, 1)

	feat := Reshape(masks, b*ng, h, w, 1)
	out := RoIAlign(feat, rois5, maskSize, maskSize, 1, 0, true, maxGrid) // [N, S, S, 1]
	bin := GreaterOrEqual(Reshape(out, n, maskSize, maskSize), Scalar(g, dt, 0.5))
	return StopGradient(ConvertDType(bin, dt))
}

// maskEdgeReplicate replaces row h and column w of each image's bitmaps m [B, G, H, W] by
// copies of row h-1 and column w-1 (the corner by pixel (h-1, w-1)), size [B, 2] = (h, w);
// an image whose h (w) is H (W) is left as is along that axis.
func maskEdgeReplicate(m, size *Node) *Node {
	g := m.Graph()
	d := m.Shape().Dimensions
	b, h, w := d[0], d[2], d[3]
	mh := Reshape(Slice(size, AxisRange(), AxisElem(0)), b, 1, 1, 1)
	mw := Reshape(Slice(size, AxisRange(), AxisElem(1)), b, 1, 1, 1)
	if h > 1 {
		rows := Iota(g, shapes.Make(dtypes.Int32, 1, 1, h, 1), 2)
		prev := Concatenate([]*Node{Slice(m, AxisRange(), AxisRange(), AxisRange(0, 1)), Slice(m, AxisRange(), AxisRange(), AxisRange(0, h-1))}, 2)
		m = Where(BroadcastToDims(Equal(rows, mh), m.Shape().Dimensions...), prev, m)
	}
	if w > 1 {
		cols := Iota(g, shapes.Make(dtypes.Int32, 1, 1, 1, w), 3)
		prev := Concatenate([]*Node{Slice(m, AxisRange(), AxisRange(), AxisRange(), AxisRange(0, 1)), Slice(m, AxisRange(), AxisRange(), AxisRange(), AxisRange(0, w-1))}, 3)
		m = Where(BroadcastToDims(Equal(cols, mw), m.Shape().Dimensions...), prev, m)
	}
	return m
}

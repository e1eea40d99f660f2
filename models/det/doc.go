// Package det is the downstream detection benchmarks' model side: mmdet 2.x's Faster R-CNN
// (FasterRCNN: the C4 detector of mmselfsup's VOC benchmark, and with an FPN neck the box
// branch of the COCO benchmark) and Mask R-CNN (MaskRCNN: the R50-FPN detector of the COCO
// benchmark, with its mask branch) and their parts, written so that
// XLA compiles each graph once: every tensor has a static shape, and what is data-dependent in
// mmdet (how many boxes survive a filter, how many anchors or RoIs are sampled, how many
// samples a RoIAlign bin takes) is expressed with fixed maximum sizes and validity masks
// instead of dynamic shapes. The package uses no While, Sort, TopK, Bitcast or DynamicSlice
// (GoMLX v0.26 has no sort or loop op, and its pure-Go backend lacks the others): only
// elementwise ops, reductions, Iota, Where, Gather and ScatterSum, so the same graphs run on
// the CPU backend ("go") and on XLA.
//
// The parts, registered as mmdet names them, and what each bounds:
//
//   - AnchorGenerator (prior_generators): the anchors of a feature map, constants per padded
//     canvas; ValidFlags masks those in the batch padding and, with allowed_border, those
//     crossing the image, from image sizes given as tensors.
//   - DeltaXYWHBBoxCoder (bbox_coders): bbox2delta and delta2bbox; no bound.
//   - MaxIoUAssigner (bbox_assigners) on a masked IoU matrix: GT boxes padded to G slots per
//     image (the pipeline's max_gt).
//   - RandomSampler (bbox_samplers): a fixed num of slots, positives first; a uniformly random
//     subset as mmdet draws, though never the same draw as PyTorch for a seed.
//   - BoxIoU: the IoU matrix of two box sets (torchvision.ops.box_iou); no bound.
//   - TopKMask and TopK: the k best scores (mmdet's nms_pre), as a mask or gathered into k
//     slots, by a bitwise search over order-preserving integer keys.
//   - NMS and BatchedNMS: greedy NMS (torchvision.ops.nms, mmcv's nms and batched_nms) over a
//     fixed N with a validity mask, returning a fixed maxOut indices and a validity mask. It is
//     greedy NMS unrolled into maxOut steps (ReduceMax/ReduceMin pick the next box, one IoU
//     row suppresses), exact for every input; the graph grows linearly with maxOut and the
//     work is O(maxOut * N). Equal scores are visited by ascending index.
//   - RoIAlign: torchvision/mmcv RoIAlign on NHWC features. With sampling_ratio = 0 the
//     adaptive per-bin grid is data-dependent: it uses maxGrid x maxGrid masked sample slots,
//     exact whenever ceil(roi_size / out) <= maxGrid, and clamps the grid to maxGrid beyond
//     (the roi_layer's max_grid key).
//   - FPN (necks, a MultiLevelNeck): mmdet's FPN with add_extra_convs = false; no bound. The
//     top-down nearest upsampling repeats pixels for integer factors and uses 0/1 matrices
//     otherwise (NearestResize), exact either way.
//   - RPNHead (heads) on one map or every pyramid level (shared weights): its loss over the
//     sampled anchors of all levels concatenated (LossLevels) and its proposals (the nms_pre
//     best of each level gathered into slots, decoded, NMS within each level via BatchedNMS
//     with the level ids, max_per_img slots over all levels: ProposalsLevels).
//   - RoIExtractor (mmdet's SingleRoIExtractor, bbox_roi_extractor): RoIAlign on one map, or
//     on the level MapRoILevels gives each RoI (finest_scale 56): one gather from a table of
//     all the levels, each RoI with its level's scale and size (see Extract).
//   - StandardRoIHead (heads) with an optional shared head (shared_heads: models' ResLayer and
//     ResLayerExtraNorm; none for FPN) and a BoxHead (heads): BBoxHead (C4) or
//     ConvFCBBoxHead (Shared4Conv1FCBBoxHead, Shared2FCBBoxHead; the flatten in PyTorch's
//     NCHW order); the RoIs sampled from the proposals and the GT boxes, their loss; at test
//     time the class-wise NMS of the detections into max_per_img slots (GetBBoxes).
//   - The mask branch of StandardRoIHead (mask_roi_extractor, mask_head): FCNMaskHead
//     (heads); its training RoIs are the first NumExpectedPos sampled slots of each image,
//     where the sampler puts its positives, weighted by whether they hold one; MaskTargets
//     cuts the targets from the GT bitmaps [B, G, H, W] with RoIAlign on an adaptive grid of
//     at most train_cfg.rcnn.mask_max_grid samples per bin and axis (exact for RoIs up to
//     mask_max_grid x mask_size pixels a side). At test time the mask head runs on the
//     max_per_img detection slots; PasteMask (host-side, pure Go) pastes a mask into the
//     image as mmdet's _do_paste_mask on the GPU.
//
// Where results can differ from mmdet's dynamic implementation: the sampler's random draws;
// RoIs larger than max_grid x output_size feature pixels (sampled on a clamped grid); more GT
// boxes than max_gt in an image (an error, not a truncation); equal scores, which mmdet's
// unstable sorts may order otherwise; and the padding of a batch, which enters the batch-norm
// statistics of the padded canvas, as in mmdet, but with another amount of padding when the
// canvases differ. Padded outputs carry their validity masks, and every consumer in the
// package honours them. Parity with torchvision and with transcriptions of mmdet's
// formulas, in float64 and float32, forward and backward, is tested against the references in
// benchmarks/ (det_ops, det_anchor, rpn_loss, rpn_proposals, bbox_head, bbox_postprocess,
// fpn for the FPN, the level mapping and multi-level RoIAlign, the multi-level proposals
// and the ConvFC box heads, and mask_head for the mask head, its loss, the mask targets and
// the pasting).
package det

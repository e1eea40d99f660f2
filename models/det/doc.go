// Package det holds the graph pieces of the downstream detection benchmark (Faster R-CNN
// R50-C4 with mmdet 2.x semantics), written so that XLA compiles each graph once: every
// tensor has a static shape, and what is data-dependent in mmdet (how many boxes survive a
// filter, how many samples a RoIAlign bin takes) is expressed with fixed maximum sizes and
// validity masks instead of dynamic shapes. The package uses no While, Sort, TopK or
// DynamicSlice (GoMLX v0.26 has no sort or loop op, and its pure-Go backend lacks
// DynamicSlice): only elementwise ops, reductions, Iota, Where and Gather, so the same graphs
// run on the CPU backend ("go") and on XLA.
//
// The ops, and what each bounds:
//
//   - BoxIoU: the IoU matrix of two box sets (torchvision.ops.box_iou); no bound.
//   - NMS and BatchedNMS: greedy NMS (torchvision.ops.nms, mmcv's nms and batched_nms) over a
//     fixed N with a validity mask, returning a fixed maxOut indices and a validity mask. It is
//     greedy NMS unrolled into maxOut steps (ReduceMax/ReduceMin pick the next box, one IoU
//     row suppresses), exact for every input; the graph grows linearly with maxOut and the
//     work is O(maxOut * N). Equal scores are visited by ascending index.
//   - RoIAlign: torchvision/mmcv RoIAlign on NHWC features. With sampling_ratio = 0 the
//     adaptive per-bin grid is data-dependent: it uses maxGrid x maxGrid masked sample slots,
//     exact whenever ceil(roi_size / out) <= maxGrid, and clamps the grid to maxGrid beyond.
//
// Padded outputs carry their validity masks; consumers (proposal selection, the ROI sampler,
// the losses, test-time post-processing) must honour them. Parity with torchvision, in float64
// and float32, forward and backward, is tested against benchmarks/det_ops_reference.py.
package det

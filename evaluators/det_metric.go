package evaluators

import "github.com/goselfsup/goselfsup/coco"

// DetMetric is an evaluator of object detection: it scores each image's detections against
// the dataset's boxes, accumulated over the dataset (VOCMetric is one). The engine's val
// loop will use it with a detector as it uses a SegMetric with a segmentor: one accumulator
// per evaluation, Add for each image in the dataset's order, then Result.
type DetMetric interface {
	// NewDetAccumulator returns an empty accumulator for the dataset.
	NewDetAccumulator(ds DetDataset) (DetAccumulator, error)
}

// DetDataset is what a DetMetric learns of the dataset it scores: its classes, in label
// order, and whatever else the dataset offers that a metric asks for (CocoMetric scores
// against a CocoGroundTruth's annotation file).
type DetDataset interface {
	Classes() []string
}

// DetAccumulator accumulates the images of one evaluation.
type DetAccumulator interface {
	// Add scores one image: its detections and its ground truth, both in the pixel
	// coordinates of the image as decoded (mmdet rescales the detections by 1 /
	// scale_factor before it evaluates them).
	Add(det Detections, gt GroundTruth) error
	// Result returns the metrics (as mmdet logs them) and the per-class table.
	Result() (metrics map[string]float64, table string)
}

// Detections are one image's detected boxes: x1, y1, x2, y2, with a score and a class
// index (0 to classes - 1) each, as mmdet 2.x's per-class result arrays flattened. Their
// order matters only between equal scores (see VOCMetric).
type Detections struct {
	Boxes  [][4]float32
	Scores []float32
	Labels []int32
	// Masks are the boxes' instance masks in the image as decoded, run-length encoded, for
	// detectors with a mask branch (Mask R-CNN); nil for box detectors.
	Masks []coco.RLE
}

// GroundTruth is one image's annotation, mmdet 2.x's ann_info: the boxes to find and the
// ignored ones (VOC's difficult objects), which a detection may match without counting
// as right or wrong.
type GroundTruth struct {
	// Index is the image's sample index in the dataset.
	Index         int
	Boxes         [][4]float32
	Labels        []int32
	IgnoredBoxes  [][4]float32
	IgnoredLabels []int32
}

package evaluators

// DetMetric is an evaluator of object detection: it scores each image's detections against
// the dataset's boxes, accumulated over the dataset (VOCMetric is one). The engine's val
// loop will use it with a detector as it uses a SegMetric with a segmentor: one accumulator
// per evaluation, Add for each image in the dataset's order, then Result.
type DetMetric interface {
	// NewDetAccumulator returns an empty accumulator for the dataset's classes, in label
	// order.
	NewDetAccumulator(classes []string) (DetAccumulator, error)
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
}

// GroundTruth is one image's annotation, mmdet 2.x's ann_info: the boxes to find and the
// ignored ones (VOC's difficult objects), which a detection may match without counting
// as right or wrong.
type GroundTruth struct {
	Boxes         [][4]float32
	Labels        []int32
	IgnoredBoxes  [][4]float32
	IgnoredLabels []int32
}

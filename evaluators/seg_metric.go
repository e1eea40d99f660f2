package evaluators

// SegMetric is an evaluator of semantic segmentation: it scores predicted label maps
// against the dataset's, accumulated over the dataset. The engine's val loop uses it with a
// segmentor (IoUMetric is one).
type SegMetric interface {
	// NewSegAccumulator returns an empty accumulator for the dataset's classes, in label
	// order.
	NewSegAccumulator(classes []string) (SegAccumulator, error)
}

// SegAccumulator accumulates the images of one evaluation.
type SegAccumulator interface {
	// Add scores one image: its predicted and true label maps, flattened the same way.
	Add(pred, label []int32) error
	// Result returns the metrics (as mmseg logs them: the summary and the per-class values
	// as "<column>.<class>") and the per-class table.
	Result() (metrics map[string]float64, table string)
}

// NewSegAccumulator is New, as a SegMetric.
func (c *IoUMetricConfig) NewSegAccumulator(classes []string) (SegAccumulator, error) {
	return c.New(classes)
}

// Result computes the metrics of the images added so far.
func (m *IoUMetric) Result() (map[string]float64, string) {
	r := m.Compute()
	return r.Metrics(), r.Table()
}

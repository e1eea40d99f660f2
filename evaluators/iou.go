package evaluators

import (
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"

	"github.com/goselfsup/goselfsup/registry"
)

func init() {
	registry.Add(registry.Evaluators, "IoUMetric", "semantic segmentation IoU, accumulated over the dataset (mmseg 1.x)",
		func() *IoUMetricConfig {
			return &IoUMetricConfig{IgnoreIndex: 255, IoUMetrics: []string{"mIoU"}, Beta: 1}
		})
}

// IoUMetricConfig is mmseg 1.x's IoUMetric. Build gives the config itself: the metric's
// classes come from the dataset, so New makes the accumulator once they are known.
type IoUMetricConfig struct {
	IgnoreIndex int      `toml:"ignore_index" doc:"the label of pixels to leave out"`
	IoUMetrics  []string `toml:"iou_metrics" doc:"the metrics: mIoU, mDice, mFscore"`
	NanToNum    *float64 `toml:"nan_to_num" doc:"the value that replaces NaN per class (a class neither predicted nor labelled), before the means"`
	Beta        float64  `toml:"beta" doc:"the beta of mFscore"`
}

var iouMetricNames = []string{"mIoU", "mDice", "mFscore"}

func (c *IoUMetricConfig) Validate() error {
	var errs []error
	if len(c.IoUMetrics) == 0 {
		errs = append(errs, registry.FieldErrorf("iou_metrics", "must list at least one of %v", iouMetricNames))
	}
	for _, m := range c.IoUMetrics {
		if !slices.Contains(iouMetricNames, m) {
			errs = append(errs, registry.FieldErrorf("iou_metrics", "%q is not one of %v", m, iouMetricNames))
		}
	}
	if c.Beta <= 0 {
		errs = append(errs, registry.FieldErrorf("beta", "must be positive, got %g", c.Beta))
	}
	return errors.Join(errs...)
}

func (c *IoUMetricConfig) Build(*registry.Env) (any, error) { return c, nil }

// New returns an empty accumulator for the dataset's classes, in label order.
func (c *IoUMetricConfig) New(classes []string) (*IoUMetric, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	if len(classes) == 0 {
		return nil, errors.New("IoUMetric: the dataset names no classes")
	}
	if c.IgnoreIndex >= 0 && c.IgnoreIndex < len(classes) {
		return nil, fmt.Errorf("IoUMetric: ignore_index %d is the label of class %q", c.IgnoreIndex, classes[c.IgnoreIndex])
	}
	return &IoUMetric{IoUMetricConfig: *c, Classes: slices.Clone(classes), Total: NewAreas(len(classes))}, nil
}

// Areas are mmseg's intersect_and_union per class: pixel counts of prediction ∩ label,
// prediction ∪ label, prediction and label, without the ignored pixels. Counts add up over
// images (and over processes: Add).
type Areas struct {
	Intersect, Union, Pred, Label []int64
}

func NewAreas(classes int) Areas {
	return Areas{make([]int64, classes), make([]int64, classes), make([]int64, classes), make([]int64, classes)}
}

// Add adds b's counts to a's.
func (a Areas) Add(b Areas) error {
	if len(b.Intersect) != len(a.Intersect) || len(b.Union) != len(a.Union) || len(b.Pred) != len(a.Pred) || len(b.Label) != len(a.Label) {
		return fmt.Errorf("areas of %d classes added to areas of %d", len(b.Intersect), len(a.Intersect))
	}
	for c := range a.Intersect {
		a.Intersect[c] += b.Intersect[c]
		a.Union[c] += b.Union[c]
		a.Pred[c] += b.Pred[c]
		a.Label[c] += b.Label[c]
	}
	return nil
}

// Label is a label map's element type.
type Label interface {
	~uint8 | ~int32 | ~int64 | ~int
}

// IntersectAndUnion is mmseg's intersect_and_union for one image: the pixels whose label is
// ignore are left out; of the rest, the histograms over the classes [0, classes) of the
// prediction where it equals the label, of the prediction and of the label, and union =
// pred + label - intersect. A prediction, or a label other than ignore, outside the classes
// is an error (mmseg's torch.histc would drop it silently).
func IntersectAndUnion[T Label](pred, label []T, classes, ignore int) (Areas, error) {
	if len(pred) != len(label) {
		return Areas{}, fmt.Errorf("a prediction of %d pixels for a label map of %d", len(pred), len(label))
	}
	a := NewAreas(classes)
	for i, l := range label {
		if int(l) == ignore {
			continue
		}
		p := pred[i]
		if int(p) < 0 || int(p) >= classes {
			return Areas{}, fmt.Errorf("pixel %d is predicted as %d, outside the %d classes", i, p, classes)
		}
		if int(l) < 0 || int(l) >= classes {
			return Areas{}, fmt.Errorf("pixel %d is labelled %d: neither one of the %d classes nor ignore_index %d", i, l, classes, ignore)
		}
		a.Pred[p]++
		a.Label[l]++
		if p == l {
			a.Intersect[p]++
		}
	}
	for c := range a.Union {
		a.Union[c] = a.Pred[c] + a.Label[c] - a.Intersect[c]
	}
	return a, nil
}

// IoUMetric accumulates the areas of a dataset's images and scores them as mmseg's
// IoUMetric does. It needs nothing but the label maps, so a plugin process can run it
// without the runner.
type IoUMetric struct {
	IoUMetricConfig
	Classes []string
	Total   Areas
	Images  int
}

// Add scores one image: pred and label are its label maps, flattened the same way.
func (m *IoUMetric) Add(pred, label []int32) error { return addImage(m, pred, label) }

// AddUint8 is Add for uint8 label maps (PNG annotations).
func (m *IoUMetric) AddUint8(pred, label []uint8) error { return addImage(m, pred, label) }

func addImage[T Label](m *IoUMetric, pred, label []T) error {
	a, err := IntersectAndUnion(pred, label, len(m.Classes), m.IgnoreIndex)
	if err != nil {
		return fmt.Errorf("IoUMetric, image %d: %w", m.Images, err)
	}
	m.Images++
	return m.Total.Add(a)
}

// AddAreas adds the areas of images scored elsewhere (another process's IntersectAndUnion).
func (m *IoUMetric) AddAreas(a Areas, images int) error {
	if err := m.Total.Add(a); err != nil {
		return fmt.Errorf("IoUMetric: %w", err)
	}
	m.Images += images
	return nil
}

// IoUResult is what IoUMetric computes.
type IoUResult struct {
	// Summary is what mmseg's compute_metrics returns: aAcc and the mean of each per-class
	// metric (mIoU, mAcc; mDice; mFscore, mPrecision, mRecall), as round(x*100, 2), in Order.
	Summary map[string]float64
	Order   []string
	// Columns are the per-class metrics (IoU, Acc, ...), in mmseg's order, as round(x*100, 2)
	// with NaN for a class that is neither labelled nor predicted (nan_to_num unset).
	Columns []string
	Class   map[string][]float64
	Classes []string
}

// Compute is mmseg's total_area_to_metrics over the accumulated areas, then
// compute_metrics's rounding: aAcc = ΣI / ΣL; per class IoU = I/U, Acc = I/L, Dice =
// 2I/(P+L), Precision = I/P, Recall = I/L, Fscore = (1+β²)·P·R / (β²·P + R), 0/0 being NaN
// (or nan_to_num); each summary is the mean over the classes that are not NaN.
//
// mmseg counts areas in float32 and averages in float32; we count exactly and average in
// float64, which can move a result across a rounding boundary of 0.01 only when it lies
// within about 1e-5 of one.
func (m *IoUMetric) Compute() *IoUResult {
	t := m.Total
	n := len(m.Classes)
	div := func(a, b []int64, scale float64) []float64 {
		out := make([]float64, n)
		for c := range out {
			out[c] = scale * float64(a[c]) / float64(b[c]) // 0/0 is NaN, x/0 +Inf as NumPy's
		}
		return out
	}
	var sumI, sumL int64
	for c := range n {
		sumI += t.Intersect[c]
		sumL += t.Label[c]
	}
	columns := []string{}
	values := map[string][]float64{}
	put := func(name string, v []float64) {
		if _, ok := values[name]; ok {
			return // mmseg's OrderedDict keeps the first position of a key set twice
		}
		columns = append(columns, name)
		values[name] = v
	}
	for _, metric := range m.IoUMetrics {
		switch metric {
		case "mIoU":
			put("IoU", div(t.Intersect, t.Union, 1))
			put("Acc", div(t.Intersect, t.Label, 1))
		case "mDice":
			sum := make([]int64, n)
			for c := range sum {
				sum[c] = t.Pred[c] + t.Label[c]
			}
			put("Dice", div(t.Intersect, sum, 2))
			put("Acc", div(t.Intersect, t.Label, 1))
		case "mFscore":
			precision, recall := div(t.Intersect, t.Pred, 1), div(t.Intersect, t.Label, 1)
			f := make([]float64, n)
			b2 := m.Beta * m.Beta
			for c := range f {
				f[c] = (1 + b2) * (precision[c] * recall[c]) / (b2*precision[c] + recall[c])
			}
			put("Fscore", f)
			put("Precision", precision)
			put("Recall", recall)
		}
	}
	aAcc := float64(sumI) / float64(sumL)
	if m.NanToNum != nil {
		aAcc = nanToNum(aAcc, *m.NanToNum)
		for _, v := range values {
			for c := range v {
				v[c] = nanToNum(v[c], *m.NanToNum)
			}
		}
	}
	r := &IoUResult{Summary: map[string]float64{"aAcc": roundPercent(aAcc)}, Order: []string{"aAcc"},
		Columns: columns, Class: map[string][]float64{}, Classes: slices.Clone(m.Classes)}
	for _, name := range columns {
		v := values[name]
		r.Summary["m"+name] = roundPercent(nanMean(v))
		r.Order = append(r.Order, "m"+name)
		rounded := make([]float64, n)
		for c := range v {
			rounded[c] = roundPercent(v[c])
		}
		r.Class[name] = rounded
	}
	return r
}

// nanToNum is np.nan_to_num(x, nan=v): NaN becomes v, ±Inf the largest finite float64.
func nanToNum(x, v float64) float64 {
	switch {
	case math.IsNaN(x):
		return v
	case math.IsInf(x, 1):
		return math.MaxFloat64
	case math.IsInf(x, -1):
		return -math.MaxFloat64
	}
	return x
}

// nanMean is np.nanmean: NaN when every value is NaN.
func nanMean(v []float64) float64 {
	sum, k := 0.0, 0
	for _, x := range v {
		if !math.IsNaN(x) {
			sum += x
			k++
		}
	}
	if k == 0 {
		return math.NaN()
	}
	return sum / float64(k)
}

// roundPercent is mmseg's np.round(x * 100, 2): NumPy rounds half to even, as rint(y*100)/100.
func roundPercent(x float64) float64 {
	y := x * 100
	return math.RoundToEven(y*100) / 100
}

// Metrics is the summary with each per-class value added as "<column>.<class>" (IoU.cat,
// Acc.cat), as mmseg 0.x reported them; mmseg 1.x only prints those in its table. The NaN of
// a class absent from the dataset is left out of the map.
func (r *IoUResult) Metrics() map[string]float64 {
	out := map[string]float64{}
	for k, v := range r.Summary {
		out[k] = v
	}
	for _, name := range r.Columns {
		for c, v := range r.Class[name] {
			if !math.IsNaN(v) {
				out[name+"."+r.Classes[c]] = v
			}
		}
	}
	return out
}

// Table is the per-class table mmseg logs after "per class results:", a PrettyTable of the
// Class column and the per-class metrics, values printed as NumPy prints float32.
func (r *IoUResult) Table() string {
	header := append([]string{"Class"}, r.Columns...)
	rows := make([][]string, len(r.Classes))
	for c, name := range r.Classes {
		rows[c] = []string{name}
		for _, col := range r.Columns {
			rows[c] = append(rows[c], formatFloat32(r.Class[col][c]))
		}
	}
	return prettyTable(header, rows)
}

// formatFloat32 is str(np.float32(x)): the shortest decimal that reads back as the float32.
func formatFloat32(x float64) string {
	switch {
	case math.IsNaN(x):
		return "nan"
	case math.IsInf(x, 1):
		return "inf"
	case math.IsInf(x, -1):
		return "-inf"
	}
	s := strconv.FormatFloat(float64(float32(x)), 'f', -1, 32)
	if !strings.Contains(s, ".") {
		s += ".0"
	}
	return s
}

// prettyTable prints rows as PrettyTable's default style: every column as wide as its
// widest cell, cells centred with one space of padding (odd leftover space on the right of
// odd-length text, on the left of even-length text), rules of '-' joined by '+'.
func prettyTable(header []string, rows [][]string) string {
	width := make([]int, len(header))
	for j, h := range header {
		width[j] = len([]rune(h))
		for _, r := range rows {
			width[j] = max(width[j], len([]rune(r[j])))
		}
	}
	var b strings.Builder
	rule := func() {
		b.WriteByte('+')
		for _, w := range width {
			b.WriteString(strings.Repeat("-", w+2))
			b.WriteByte('+')
		}
		b.WriteByte('\n')
	}
	line := func(cells []string) {
		b.WriteByte('|')
		for j, cell := range cells {
			n := len([]rune(cell))
			excess := width[j] - n
			left, right := excess/2, excess/2
			if excess%2 == 1 {
				if n%2 == 1 {
					right++
				} else {
					left++
				}
			}
			b.WriteString(" " + strings.Repeat(" ", left) + cell + strings.Repeat(" ", right) + " |")
		}
		b.WriteByte('\n')
	}
	rule()
	line(header)
	rule()
	for _, r := range rows {
		line(r)
	}
	rule()
	return strings.TrimSuffix(b.String(), "\n")
}

package evaluators

import (
	"errors"
	"fmt"
	"math"
	"slices"
	"sort"
	"strconv"
	"strings"

	"github.com/goselfsup/goselfsup/registry"
)

func init() {
	registry.Add(registry.Evaluators, "VOCMetric", "PASCAL VOC detection mAP (mmdet's eval_map: 11-point or area AP, difficult boxes ignored)",
		func() *VOCMetricConfig {
			return &VOCMetricConfig{IoUThrs: FloatList{0.5}, Metric: "mAP", EvalMode: "11points", UseLegacyCoordinate: true}
		})
}

// VOCMetricConfig is mmdet's VOCMetric (mmdet 3.x's name; mmdet 2.x's VOCDataset.evaluate
// with metric 'mAP'): mmdet's eval_map at each IoU threshold, with
// use_legacy_coordinate=True (widths x2 - x1 + 1, the VOC devkit's), as both call it.
//
// Scale: as mmdet, the metrics are fractions: "mAP" is the mean over iou_thrs of the mean
// AP over the classes with ground truth (0.7952 where mmselfsup's table says 79.52), and
// "AP50" (AP<100*thr>) is that threshold's mean AP rounded to 3 decimals. The table is
// mmdet's print_map_summary: per class the number of ground truth boxes, of detections,
// the final recall and the AP, to 3 decimals, and the mAP.
//
// Ties: mmdet orders detections by np.argsort(-score), NumPy's quicksort, which leaves the
// order of equal scores to the sort's internals (it is stable only below 17 elements).
// goselfsup sorts stably: equal scores keep the order in which they were added, image by
// image in the order of Add, and within an image in the order of its Detections. That is
// np.argsort(-score, kind="stable"), which benchmarks/voc_map_reference.py uses; the AP can
// differ from mmdet's only where a true and a false positive share a score.
type VOCMetricConfig struct {
	IoUThrs             FloatList   `toml:"iou_thrs" doc:"the IoU thresholds (a detection matches at IoU >= thr); one number or a list"`
	Metric              string      `toml:"metric" doc:"mAP, the only one supported (mmdet's recall is not)"`
	EvalMode            string      `toml:"eval_mode" doc:"11points (VOC2007's metric, mmdet's choice for a VOC2007 test set) or area (VOC2010 and later)"`
	UseLegacyCoordinate bool        `toml:"use_legacy_coordinate" doc:"box widths and heights are x2 - x1 + 1, as the VOC devkit and mmdet's VOC evaluation; goselfsup's own key"`
	ScaleRanges         [][]float64 `toml:"scale_ranges" doc:"mmdet's area ranges; not supported"`
	CollectDevice       string      `toml:"collect_device" doc:"mmengine's; no effect"`
	Prefix              string      `toml:"prefix" doc:"mmengine's prefix of the metric names; no effect"`
}

// FloatList is a number or a list of numbers.
type FloatList []float64

// TOMLType says what a FloatList takes, for print_config --describe.
func (FloatList) TOMLType() string { return "float or array of float" }

func (l *FloatList) UnmarshalTOML(v any) error {
	num := func(e any) (float64, error) {
		switch x := e.(type) {
		case float64:
			return x, nil
		case int64:
			return float64(x), nil
		}
		return 0, fmt.Errorf("expected a number, got %v", e)
	}
	if x, ok := v.([]any); ok {
		*l = nil
		for _, e := range x {
			f, err := num(e)
			if err != nil {
				return err
			}
			*l = append(*l, f)
		}
		return nil
	}
	f, err := num(v)
	if err != nil {
		return err
	}
	*l = FloatList{f}
	return nil
}

func (c *VOCMetricConfig) Validate() error {
	var errs []error
	if len(c.IoUThrs) == 0 {
		errs = append(errs, registry.FieldErrorf("iou_thrs", "must give at least one threshold"))
	}
	for _, t := range c.IoUThrs {
		if !(t > 0 && t <= 1) {
			errs = append(errs, registry.FieldErrorf("iou_thrs", "must be in (0, 1], got %g", t))
		}
	}
	if c.Metric != "mAP" {
		errs = append(errs, registry.FieldErrorf("metric", "must be mAP, got %q", c.Metric))
	}
	if len(c.ScaleRanges) > 0 {
		errs = append(errs, registry.FieldErrorf("scale_ranges", "is not supported"))
	}
	return errors.Join(append(errs, oneOfMode(c.EvalMode))...)
}

func oneOfMode(m string) error {
	if m != "11points" && m != "area" {
		return registry.FieldErrorf("eval_mode", "must be 11points or area, got %q", m)
	}
	return nil
}

func (c *VOCMetricConfig) Build(*registry.Env) (any, error) { return c, nil }

// New returns an empty accumulator for the dataset's classes, in label order.
func (c *VOCMetricConfig) New(classes []string) (*VOCMetric, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	if len(classes) == 0 {
		return nil, errors.New("VOCMetric: the dataset names no classes")
	}
	return &VOCMetric{VOCMetricConfig: *c, Classes: slices.Clone(classes)}, nil
}

// NewDetAccumulator is New with the dataset's classes, as a DetMetric.
func (c *VOCMetricConfig) NewDetAccumulator(ds DetDataset) (DetAccumulator, error) {
	return c.New(ds.Classes())
}

// VOCMetric accumulates the detections and ground truth of the images added so far.
type VOCMetric struct {
	VOCMetricConfig
	Classes []string
	dets    []Detections
	gts     []GroundTruth
}

// Images is the number of images added.
func (m *VOCMetric) Images() int { return len(m.dets) }

// Add adds one image (a copy of its detections and ground truth).
func (m *VOCMetric) Add(det Detections, gt GroundTruth) error {
	if err := checkImage(det, gt, len(m.Classes)); err != nil {
		return fmt.Errorf("VOCMetric: image %d: %w", len(m.dets), err)
	}
	m.dets = append(m.dets, Detections{Boxes: slices.Clone(det.Boxes), Scores: slices.Clone(det.Scores), Labels: slices.Clone(det.Labels)})
	m.gts = append(m.gts, GroundTruth{Index: gt.Index, Boxes: slices.Clone(gt.Boxes), Labels: slices.Clone(gt.Labels),
		IgnoredBoxes: slices.Clone(gt.IgnoredBoxes), IgnoredLabels: slices.Clone(gt.IgnoredLabels)})
	return nil
}

func checkImage(det Detections, gt GroundTruth, classes int) error {
	if len(det.Scores) != len(det.Boxes) || len(det.Labels) != len(det.Boxes) {
		return fmt.Errorf("%d detected boxes with %d scores and %d labels", len(det.Boxes), len(det.Scores), len(det.Labels))
	}
	if len(gt.Labels) != len(gt.Boxes) || len(gt.IgnoredLabels) != len(gt.IgnoredBoxes) {
		return fmt.Errorf("%d boxes with %d labels, %d ignored boxes with %d labels", len(gt.Boxes), len(gt.Labels), len(gt.IgnoredBoxes), len(gt.IgnoredLabels))
	}
	for what, labels := range map[string][]int32{"detection": det.Labels, "ground truth box": gt.Labels, "ignored box": gt.IgnoredLabels} {
		for i, l := range labels {
			if l < 0 || int(l) >= classes {
				return fmt.Errorf("%s %d has the label %d, outside the %d classes", what, i, l, classes)
			}
		}
	}
	for i, s := range det.Scores {
		if math.IsNaN(float64(s)) {
			return fmt.Errorf("detection %d has a NaN score", i)
		}
	}
	return nil
}

// VOCClassAP is one class's result at one IoU threshold, mmdet's eval_results entry.
type VOCClassAP struct {
	NumGTs, NumDets int
	// Recall is the recall over all the class's detections (0 without detections).
	Recall float64
	// AP is the average precision, computed in float32 as mmdet.
	AP float64
}

// VOCMapResult is the evaluation at each IoU threshold.
type VOCMapResult struct {
	Classes []string
	IoUThrs []float64
	// MeanAP is, per threshold, the mean AP over the classes with ground truth (0 if none).
	MeanAP []float64
	// PerClass is, per threshold, each class's result.
	PerClass [][]VOCClassAP
}

// Compute evaluates the images added so far.
func (m *VOCMetric) Compute() *VOCMapResult {
	r := &VOCMapResult{Classes: m.Classes, IoUThrs: slices.Clone([]float64(m.IoUThrs))}
	for _, thr := range m.IoUThrs {
		mean, per := EvalMap(m.dets, m.gts, len(m.Classes), thr, m.EvalMode, m.UseLegacyCoordinate)
		r.MeanAP = append(r.MeanAP, mean)
		r.PerClass = append(r.PerClass, per)
	}
	return r
}

// Result computes the metrics of the images added so far.
func (m *VOCMetric) Result() (map[string]float64, string) {
	r := m.Compute()
	return r.Metrics(), r.Table()
}

// Metrics are mmdet's: AP<100*thr> (the threshold's mean AP rounded to 3 decimals) for
// each threshold, and mAP, the mean of the thresholds' mean APs, as fractions.
func (r *VOCMapResult) Metrics() map[string]float64 {
	out := map[string]float64{}
	sum := 0.0
	for i, thr := range r.IoUThrs {
		out[fmt.Sprintf("AP%02d", int(thr*100))] = round3(r.MeanAP[i])
		sum += r.MeanAP[i]
	}
	out["mAP"] = sum / float64(len(r.IoUThrs))
	return out
}

// round3 is Python's round(x, 3).
func round3(x float64) float64 {
	v, _ := strconv.ParseFloat(strconv.FormatFloat(x, 'f', 3, 64), 64)
	return v
}

// Table is mmdet's print_map_summary for each threshold: class, gts, dets, recall, ap, and
// the mAP, as terminaltables' AsciiTable draws it.
func (r *VOCMapResult) Table() string {
	var b strings.Builder
	for i, thr := range r.IoUThrs {
		if i > 0 {
			b.WriteString("\n")
		}
		fmt.Fprintf(&b, "---------------iou_thr: %s---------------\n", strconv.FormatFloat(thr, 'g', -1, 64))
		rows := [][]string{{"class", "gts", "dets", "recall", "ap"}}
		for c, name := range r.Classes {
			p := r.PerClass[i][c]
			rows = append(rows, []string{name, strconv.Itoa(p.NumGTs), strconv.Itoa(p.NumDets),
				fmt.Sprintf("%.3f", p.Recall), fmt.Sprintf("%.3f", p.AP)})
		}
		rows = append(rows, []string{"mAP", "", "", "", fmt.Sprintf("%.3f", r.MeanAP[i])})
		b.WriteString(asciiTable(rows))
	}
	return b.String()
}

// asciiTable draws rows as terminaltables' AsciiTable with a heading row and a footing
// row (inner_footing_row_border): left-aligned cells, one space of padding.
func asciiTable(rows [][]string) string {
	widths := make([]int, len(rows[0]))
	for _, row := range rows {
		for j, cell := range row {
			widths[j] = max(widths[j], len(cell))
		}
	}
	line := func() string {
		var b strings.Builder
		for _, w := range widths {
			b.WriteString("+" + strings.Repeat("-", w+2))
		}
		return b.String() + "+"
	}
	out := []string{line()}
	for i, row := range rows {
		var b strings.Builder
		for j, cell := range row {
			b.WriteString("| " + cell + strings.Repeat(" ", widths[j]-len(cell)) + " ")
		}
		out = append(out, b.String()+"|")
		if i == 0 || i == len(rows)-2 {
			out = append(out, line())
		}
	}
	out = append(out, line())
	return strings.Join(out, "\n")
}

// EvalMap is mmdet's eval_map (mmdet/core/evaluation/mean_ap.py, 2.x) without scale
// ranges, for images' detections and ground truth (in the same order) of classes
// classes, at the IoU threshold iouThr, with mode "11points" or "area". It returns the mean
// AP over the classes with ground truth (0 if none) and each class's result.
//
// Per class and image, tpfp_default: the IoUs (float32, bbox_overlaps) of the image's
// detections of the class with its boxes of the class followed by its ignored boxes of the
// class; each detection's best box is the first with the highest IoU; visiting the
// detections by score, highest first, one whose best IoU is >= iouThr is ignored if the box
// is ignored, else a true positive if the box is not yet taken (and takes it), else a false
// positive; below iouThr, and in an image without any box, a false positive. Then over all
// images, by score: cumulated true and false positives, recall = tp / max(gts, eps),
// precision = tp / max(tp + fp, eps) (float32, eps = float32's), and average_precision.
// Both sorts are stable (see VOCMetricConfig).
func EvalMap(dets []Detections, gts []GroundTruth, classes int, iouThr float64, mode string, legacy bool) (float64, []VOCClassAP) {
	extra := float32(0)
	if legacy {
		extra = 1
	}
	per := make([]VOCClassAP, classes)
	var aps []float32
	for c := range classes {
		type scored struct {
			score  float32
			tp, fp float32
		}
		var all []scored
		numGTs := 0
		for i := range dets {
			boxes, scores := classDets(dets[i], int32(c))
			gt := classBoxes(gts[i].Boxes, gts[i].Labels, int32(c))
			ign := classBoxes(gts[i].IgnoredBoxes, gts[i].IgnoredLabels, int32(c))
			numGTs += len(gt)
			tp, fp := tpfpDefault(boxes, scores, gt, ign, iouThr, extra)
			for k := range boxes {
				all = append(all, scored{scores[k], tp[k], fp[k]})
			}
		}
		sort.SliceStable(all, func(a, b int) bool { return all[a].score > all[b].score })
		eps := float32(math.Nextafter32(1, 2) - 1) // np.finfo(np.float32).eps
		recalls, precisions := make([]float64, len(all)), make([]float32, len(all))
		var tp, fp float32
		for k, d := range all {
			tp, fp = tp+d.tp, fp+d.fp
			recalls[k] = float64(tp) / math.Max(float64(numGTs), float64(eps))
			precisions[k] = tp / max(tp+fp, eps)
		}
		ap := averagePrecision(recalls, precisions, mode)
		per[c] = VOCClassAP{NumGTs: numGTs, NumDets: len(all), AP: float64(ap)}
		if len(all) > 0 {
			per[c].Recall = recalls[len(all)-1]
		}
		if numGTs > 0 {
			aps = append(aps, ap)
		}
	}
	if len(aps) == 0 {
		return 0, per
	}
	sum := 0.0
	for _, ap := range aps {
		sum += float64(ap)
	}
	return sum / float64(len(aps)), per
}

// classDets are an image's detections of class c, in their order.
func classDets(d Detections, c int32) ([][4]float32, []float32) {
	var boxes [][4]float32
	var scores []float32
	for k, l := range d.Labels {
		if l == c {
			boxes = append(boxes, d.Boxes[k])
			scores = append(scores, d.Scores[k])
		}
	}
	return boxes, scores
}

func classBoxes(boxes [][4]float32, labels []int32, c int32) [][4]float32 {
	var out [][4]float32
	for k, l := range labels {
		if l == c {
			out = append(out, boxes[k])
		}
	}
	return out
}

// tpfpDefault is mmdet 2.x's tpfp_default without area ranges: each detection's true and
// false positive flag (both 0 for a detection matched to an ignored box).
func tpfpDefault(boxes [][4]float32, scores []float32, gt, ign [][4]float32, thr float64, extra float32) (tp, fp []float32) {
	tp, fp = make([]float32, len(boxes)), make([]float32, len(boxes))
	all := append(append([][4]float32(nil), gt...), ign...)
	if len(all) == 0 {
		for k := range fp {
			fp[k] = 1
		}
		return tp, fp
	}
	best, bestIoU := make([]int, len(boxes)), make([]float32, len(boxes))
	for k, d := range boxes {
		best[k], bestIoU[k] = 0, float32(math.Inf(-1))
		for j, g := range all {
			if v := iou32(d, g, extra); v > bestIoU[k] { // the first of equal IoUs, as argmax
				best[k], bestIoU[k] = j, v
			}
		}
	}
	order := make([]int, len(boxes))
	for k := range order {
		order[k] = k
	}
	sort.SliceStable(order, func(a, b int) bool { return scores[order[a]] > scores[order[b]] })
	covered := make([]bool, len(all))
	for _, k := range order {
		switch {
		// The float32 IoU against the float64 threshold, as NumPy 1.x (mmdet 2.x's) compares
		// them; NumPy 2 compares in float32, which differs only for a threshold that float32
		// cannot hold (not 0.5) and an IoU between the two.
		case float64(bestIoU[k]) < thr:
			fp[k] = 1
		case best[k] >= len(gt): // an ignored box: neither
		case !covered[best[k]]:
			covered[best[k]] = true
			tp[k] = 1
		default:
			fp[k] = 1
		}
	}
	return tp, fp
}

// iou32 is mmdet's bbox_overlaps (mmdet/core/evaluation/bbox_overlaps.py) of two boxes, in
// float32 as NumPy computes it, with widths x2 - x1 + extra. The conversions keep each
// operation rounded to float32 (no fused multiply-add).
func iou32(a, b [4]float32, extra float32) float32 {
	area1 := float32(float32(a[2]-a[0]+extra) * float32(a[3]-a[1]+extra))
	area2 := float32(float32(b[2]-b[0]+extra) * float32(b[3]-b[1]+extra))
	w := max(float32(min(a[2], b[2])-max(a[0], b[0])+extra), 0)
	h := max(float32(min(a[3], b[3])-max(a[1], b[1])+extra), 0)
	overlap := float32(w * h)
	union := max(float32(float32(area1+area2)-overlap), float32(1e-6))
	return overlap / union
}

// averagePrecision is mmdet's average_precision for one scale. "area": the area under
// the precision envelope, summed where the recall changes, in float64 and stored in
// float32; "11points": the mean over the thresholds 0, 0.1, ..., 1.0 (np.arange(0, 1 +
// 1e-3, 0.1): i * 0.1 in float64) of the highest precision at a recall >= the threshold
// (0 if none), summed and divided in float32.
func averagePrecision(recalls []float64, precisions []float32, mode string) float32 {
	if mode == "area" {
		n := len(recalls)
		mrec := make([]float64, n+2)
		mpre := make([]float64, n+2)
		copy(mrec[1:], recalls)
		mrec[n+1] = 1
		for i, p := range precisions {
			mpre[i+1] = float64(p)
		}
		for i := n + 1; i > 0; i-- {
			mpre[i-1] = math.Max(mpre[i-1], mpre[i])
		}
		sum := 0.0
		for i := 0; i+1 < len(mrec); i++ {
			if mrec[i+1] != mrec[i] {
				sum += (mrec[i+1] - mrec[i]) * mpre[i+1]
			}
		}
		return float32(sum)
	}
	var ap float32
	for i := range 11 {
		thr := float64(i) * 0.1
		var prec float32
		for k, r := range recalls {
			if r >= thr {
				prec = max(prec, precisions[k])
			}
		}
		ap += prec
	}
	return ap / 11
}

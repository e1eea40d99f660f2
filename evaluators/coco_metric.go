package evaluators

import (
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"

	"github.com/goselfsup/goselfsup/coco"
	"github.com/goselfsup/goselfsup/registry"
)

func init() {
	registry.Add(registry.Evaluators, "CocoMetric", "COCO box and mask AP (pycocotools' COCOeval, as mmdet's CocoDataset.evaluate calls it)",
		func() *CocoMetricConfig {
			return &CocoMetricConfig{Metric: registry.StringList{"bbox"}, ProposalNums: []int{100, 300, 1000}}
		})
}

// CocoMetricConfig is mmdet's CocoMetric (mmdet 3.x's name; mmdet 2.x's
// CocoDataset.evaluate): pycocotools' COCOeval (package coco) for each iou type in metric,
// with mmdet's maxDets, proposal_nums = [100, 300, 1000] (at most 100 detections per image
// exist, so AP equals the standard maxDets = 100 numbers).
//
// Metrics, as mmdet 2.x names and rounds them: <type>_mAP, _mAP_50, _mAP_75, _mAP_s, _mAP_m,
// _mAP_l (COCOeval's stats[0:6] to 3 decimals, fractions: 0.385 where mmselfsup's table says
// 38.5). The table is COCOeval's summary for each type and, with classwise, each category's
// AP.
//
// The ground truth is the dataset's own annotation file (the val dataset must be a
// CocoDataset: CocoGroundTruth), so crowd regions, the annotations' areas and masks score as
// pycocotools scores them. The detections are the dataset's labels mapped back to its
// category ids; masks are run-length encoded in the image as decoded.
type CocoMetricConfig struct {
	AnnFile       string              `toml:"ann_file" doc:"not supported: the ground truth is the val dataset's ann_file"`
	Metric        registry.StringList `toml:"metric" doc:"bbox, segm, or both"`
	Classwise     bool                `toml:"classwise" doc:"also tabulate each category's AP"`
	ProposalNums  []int               `toml:"proposal_nums" doc:"COCOeval's maxDets (mmdet: [100, 300, 1000])"`
	IoUThrs       FloatList           `toml:"iou_thrs" doc:"COCOeval's iouThrs; empty: 0.5 to 0.95 in steps of 0.05"`
	FormatOnly    bool                `toml:"format_only" doc:"not supported: results files are always written"`
	OutfilePrefix string              `toml:"outfile_prefix" doc:"not supported: the results go to the run's detections folder"`
	CollectDevice string              `toml:"collect_device" doc:"mmengine's; no effect"`
	Prefix        string              `toml:"prefix" doc:"mmengine's prefix of the metric names; no effect"`
}

func (c *CocoMetricConfig) Validate() error {
	var errs []error
	if len(c.Metric) == 0 {
		errs = append(errs, registry.FieldErrorf("metric", "must name bbox, segm or both"))
	}
	for _, m := range c.Metric {
		if m != "bbox" && m != "segm" {
			errs = append(errs, registry.FieldErrorf("metric", "%q is not supported (bbox, segm; mmdet's proposal metrics are not)", m))
		}
	}
	if len(c.ProposalNums) == 0 || slices.ContainsFunc(c.ProposalNums, func(n int) bool { return n < 1 }) {
		errs = append(errs, registry.FieldErrorf("proposal_nums", "must be positive detection counts, got %v", c.ProposalNums))
	}
	for _, t := range c.IoUThrs {
		if !(t > 0 && t <= 1) {
			errs = append(errs, registry.FieldErrorf("iou_thrs", "must be in (0, 1], got %g", t))
		}
	}
	if c.AnnFile != "" {
		errs = append(errs, registry.FieldErrorf("ann_file", "is not supported: the ground truth is the val dataset's ann_file"))
	}
	if c.FormatOnly {
		errs = append(errs, registry.FieldErrorf("format_only", "is not supported"))
	}
	if c.OutfilePrefix != "" {
		errs = append(errs, registry.FieldErrorf("outfile_prefix", "is not supported: the results go to the run's detections folder"))
	}
	return errors.Join(errs...)
}

func (c *CocoMetricConfig) Build(*registry.Env) (any, error) { return c, nil }

// CocoGroundTruth is a COCO dataset as CocoMetric scores against it (datasets' CocoDataset
// source): the annotation file, each sample's image id, and the category id of each label.
type CocoGroundTruth interface {
	COCO() *coco.Dataset
	ImageID(i int) int64
	CatIDs() []int64
}

// NewDetAccumulator returns an empty accumulator for ds, which must be a CocoGroundTruth.
func (c *CocoMetricConfig) NewDetAccumulator(ds DetDataset) (DetAccumulator, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	gt, ok := ds.(CocoGroundTruth)
	if !ok {
		return nil, fmt.Errorf("CocoMetric scores against a COCO annotation file: the val dataset must be a CocoDataset, got %T", ds)
	}
	if len(gt.CatIDs()) != len(ds.Classes()) {
		return nil, fmt.Errorf("CocoMetric: the dataset has %d classes and %d category ids", len(ds.Classes()), len(gt.CatIDs()))
	}
	return &CocoMetric{cfg: *c, gt: gt, classes: slices.Clone(ds.Classes())}, nil
}

// CocoMetric accumulates the results of the images added so far.
type CocoMetric struct {
	cfg     CocoMetricConfig
	gt      CocoGroundTruth
	classes []string
	imgIDs  []int64
	boxes   []coco.Result
	segms   []coco.Result
}

// Add adds one image's detections: boxes x1, y1, x2, y2 become COCO's x, y, w, h (mmdet's
// xyxy2xywh, no +1) and masks, when the detector gives them, segm results with the box's
// score.
func (m *CocoMetric) Add(det Detections, gt GroundTruth) error {
	if err := checkImage(det, GroundTruth{}, len(m.classes)); err != nil {
		return fmt.Errorf("CocoMetric: sample %d: %w", gt.Index, err)
	}
	if det.Masks != nil && len(det.Masks) != len(det.Boxes) {
		return fmt.Errorf("CocoMetric: sample %d: %d masks for %d boxes", gt.Index, len(det.Masks), len(det.Boxes))
	}
	if slices.Contains(m.cfg.Metric, "segm") && det.Masks == nil {
		return errors.New("CocoMetric: metric segm needs masks, and the model gives boxes only")
	}
	id := m.gt.ImageID(gt.Index)
	m.imgIDs = append(m.imgIDs, id)
	cats := m.gt.CatIDs()
	for i, b := range det.Boxes {
		box := [4]float64{float64(b[0]), float64(b[1]), float64(b[2] - b[0]), float64(b[3] - b[1])}
		r := coco.Result{ImageID: id, CategoryID: cats[det.Labels[i]], BBox: &box, Score: float64(det.Scores[i])}
		m.boxes = append(m.boxes, r)
		if det.Masks != nil {
			rle := det.Masks[i]
			m.segms = append(m.segms, coco.Result{ImageID: id, CategoryID: r.CategoryID, Score: r.Score, Segmentation: &rle})
		}
	}
	return nil
}

// results returns the results of one iou type.
func (m *CocoMetric) results(iouType string) []coco.Result {
	if iouType == "segm" {
		return m.segms
	}
	return m.boxes
}

// Evaluate runs COCOeval for one iou type on the images added so far.
func (m *CocoMetric) Evaluate(iouType string) (*coco.Eval, error) {
	p := coco.DefaultParams(iouType)
	p.ImgIDs = slices.Clone(m.imgIDs)
	slices.Sort(p.ImgIDs)
	p.ImgIDs = slices.Compact(p.ImgIDs)
	p.CatIDs = slices.Clone(m.gt.CatIDs())
	p.MaxDets = slices.Clone(m.cfg.ProposalNums)
	if len(m.cfg.IoUThrs) > 0 {
		p.IoUThrs = slices.Clone([]float64(m.cfg.IoUThrs))
	}
	return coco.Evaluate(m.gt.COCO(), m.results(iouType), p)
}

// cocoMetricItems are mmdet 2.x's metric_items and their COCOeval stats.
var cocoMetricItems = []struct {
	name string
	stat int
}{{"mAP", 0}, {"mAP_50", 1}, {"mAP_75", 2}, {"mAP_s", 3}, {"mAP_m", 4}, {"mAP_l", 5}}

// Result evaluates each iou type; a type that cannot be evaluated logs its error in the
// table and reports no metrics.
func (m *CocoMetric) Result() (map[string]float64, string) {
	out := map[string]float64{}
	var table strings.Builder
	for _, iouType := range m.cfg.Metric {
		fmt.Fprintf(&table, "Evaluating %s...\n", iouType)
		e, err := m.Evaluate(iouType)
		if err != nil {
			fmt.Fprintf(&table, "%s: %v\n", iouType, err)
			continue
		}
		table.WriteString(e.Summary())
		for _, it := range cocoMetricItems {
			out[iouType+"_"+it.name] = round3(e.Stats[it.stat])
		}
		if m.cfg.Classwise {
			table.WriteString(classwiseTable(e, m.classes))
		}
	}
	return out, strings.TrimRight(table.String(), "\n")
}

// WriteResults writes the results as COCO results files, mmdet's results2json:
// <prefix>.bbox.json and, with masks, <prefix>.segm.json. It returns the files written.
func (m *CocoMetric) WriteResults(prefix string) ([]string, error) {
	var files []string
	for _, iouType := range []string{"bbox", "segm"} {
		if iouType == "segm" && len(m.segms) == 0 && len(m.boxes) > 0 {
			continue
		}
		path := prefix + "." + iouType + ".json"
		if err := coco.WriteResults(path, m.results(iouType)); err != nil {
			return files, err
		}
		files = append(files, path)
	}
	return files, nil
}

// classwiseTable is mmdet 2.x's classwise table: each category's AP (the mean of its
// precision at every IoU threshold and recall, area all, the last maxDets, over the values
// that exist), three categories to a row.
func classwiseTable(e *coco.Eval, classes []string) string {
	p := e.Params
	t, r, k, a, mm := len(p.IoUThrs), len(p.RecThrs), len(p.CatIDs), len(p.AreaRng), len(p.MaxDets)
	cells := []string{}
	for c := range k {
		sum, n := 0.0, 0
		for ti := range t {
			for ri := range r {
				v := e.Precision[(((ti*r+ri)*k+c)*a+0)*mm+mm-1]
				if v > -1 {
					sum += v
					n++
				}
			}
		}
		ap := math.NaN()
		if n > 0 {
			ap = sum / float64(n)
		}
		name := fmt.Sprint(p.CatIDs[c])
		if c < len(classes) {
			name = classes[c]
		}
		cells = append(cells, name, fmt.Sprintf("%.3f", ap))
	}
	cols := min(6, len(cells))
	if cols == 0 {
		return ""
	}
	header := []string{}
	for range cols / 2 {
		header = append(header, "category", "AP")
	}
	rows := [][]string{header}
	for i := 0; i < len(cells); i += cols {
		row := make([]string, cols)
		copy(row, cells[i:min(i+cols, len(cells))])
		rows = append(rows, row)
	}
	return "\n" + prettyTable(rows[0], rows[1:]) + "\n"
}

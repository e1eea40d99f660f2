package coco

import (
	"cmp"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"os"
	"slices"
	"strings"

	"github.com/goselfsup/goselfsup/internal/atomicfile"
)

// Params are COCOeval's parameters (pycocotools' Params for iouType "bbox" or "segm").
type Params struct {
	// IoUType is "bbox" or "segm".
	IoUType string
	// ImgIDs and CatIDs select the images and categories; empty means all of the GT's. Both
	// are sorted and deduplicated by Evaluate, as pycocotools' np.unique.
	ImgIDs, CatIDs []int64
	// IoUThrs and RecThrs are the IoU and recall thresholds.
	IoUThrs, RecThrs []float64
	// MaxDets are the per-image detection limits, sorted by Evaluate; the last one bounds the
	// detections matched per image and category.
	MaxDets []int
	// AreaRng are the [min, max] area ranges, named by AreaRngLbl ("all", "small",
	// "medium", "large" for Summary).
	AreaRng    [][2]float64
	AreaRngLbl []string
	// UseCats matches detections with the GT of their own category only; without it the
	// categories are pooled as one.
	UseCats bool
}

// linspace is np.linspace(start, stop, num) with its rounding: start + i*step, the last
// point stop.
func linspace(start, stop float64, num int) []float64 {
	y := make([]float64, num)
	step := (stop - start) / float64(num-1)
	for i := range y {
		y[i] = float64(i)*step + start
	}
	y[num-1] = stop
	return y
}

// DefaultParams returns pycocotools' default parameters for iouType "bbox" or "segm": IoU
// thresholds .5:.05:.95, recall thresholds 0:.01:1, maxDets 1, 10, 100, the areas all,
// small (< 32²), medium (< 96²) and large, categories used, and all images and categories
// (ImgIDs and CatIDs empty). mmdet's CocoDataset sets MaxDets to 100, 300, 1000.
func DefaultParams(iouType string) Params {
	return Params{
		IoUType:    iouType,
		IoUThrs:    linspace(.5, .95, 10),
		RecThrs:    linspace(0, 1, 101),
		MaxDets:    []int{1, 10, 100},
		AreaRng:    [][2]float64{{0, 1e5 * 1e5}, {0, 32 * 32}, {32 * 32, 96 * 96}, {96 * 96, 1e5 * 1e5}},
		AreaRngLbl: []string{"all", "small", "medium", "large"},
		UseCats:    true,
	}
}

// Result is one detection in the COCO results format: a box for bbox results, a mask for
// segm results (mmdet's segm results carry no box), and a score.
type Result struct {
	ImageID    int64       `json:"image_id"`
	CategoryID int64       `json:"category_id"`
	BBox       *[4]float64 `json:"bbox,omitempty"`
	Score      float64     `json:"score"`
	// Segmentation is written as a compressed RLE {"size": [h, w], "counts": "..."}; an
	// uncompressed one is read as well.
	Segmentation *RLE `json:"segmentation,omitempty"`
}

// WriteResults writes rs as a COCO results JSON list.
func WriteResults(path string, rs []Result) error {
	if rs == nil {
		rs = []Result{}
	}
	data, err := json.Marshal(rs)
	if err != nil {
		return fmt.Errorf("coco: %s: %w", path, err)
	}
	if err := atomicfile.Write(path, func(w io.Writer) error {
		_, err := w.Write(data)
		return err
	}); err != nil {
		return fmt.Errorf("coco: writing %s: %w", path, err)
	}
	return nil
}

// ReadResults reads a COCO results JSON list. Errors name the file and the result's index.
func ReadResults(path string) ([]Result, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("coco: %w", err)
	}
	var raw []json.RawMessage
	if err := json.Unmarshal(data, &raw); err != nil {
		return nil, fmt.Errorf("coco: %s: %w", path, err)
	}
	rs := make([]Result, len(raw))
	for i, r := range raw {
		if err := json.Unmarshal(r, &rs[i]); err != nil {
			return nil, fmt.Errorf("coco: %s: result %d: %w", path, i, err)
		}
	}
	return rs, nil
}

// Eval is the outcome of Evaluate: pycocotools' eval['precision'], eval['recall'] and
// stats.
type Eval struct {
	// Params are the parameters used, with ImgIDs, CatIDs (one -1 without UseCats) and
	// MaxDets as evaluated.
	Params Params
	// Precision is [T][R][K][A][M] (IoU thresholds, recall thresholds, categories, areas,
	// maxDets) flattened in that order, -1 where a category has no GT in that area.
	Precision []float64
	// Recall is [T][K][A][M], -1 where there is no GT.
	Recall []float64
	// Stats are summarize's 12 numbers: AP at IoU .5:.95, .5 and .75, AP small, medium and
	// large, AR at maxDets[0], [1] and [2], AR small, medium and large. AP uses maxDets 100
	// (-1 if absent from MaxDets), the others maxDets[2], as pycocotools.
	Stats []float64
}

// PrecisionAt returns Precision[t][r][k][a][m].
func (e *Eval) PrecisionAt(t, r, k, a, m int) float64 {
	p := e.Params
	R, K, A, M := len(p.RecThrs), len(p.CatIDs), len(p.AreaRng), len(p.MaxDets)
	return e.Precision[(((t*R+r)*K+k)*A+a)*M+m]
}

// RecallAt returns Recall[t][k][a][m].
func (e *Eval) RecallAt(t, k, a, m int) float64 {
	p := e.Params
	K, A, M := len(p.CatIDs), len(p.AreaRng), len(p.MaxDets)
	return e.Recall[((t*K+k)*A+a)*M+m]
}

type gtObj struct {
	id     int64
	area   float64
	crowd  bool
	box    [4]float64
	rle    RLE
	ignore bool // _ignore for the area range being evaluated
}

type dtObj struct {
	id    int64
	area  float64
	score float64
	box   [4]float64
	rle   RLE
}

type imgCat struct{ img, cat int64 }

// evalImg is evaluateImg's record of one image, category and area range.
type evalImg struct {
	dtScores []float64
	dtm      [][]int64 // [T][D] matched GT ids, 0 unmatched
	dtIg     [][]bool  // [T][D]
	gtIg     []bool
}

// Evaluate runs pycocotools' COCOeval on the detections results of the GT gt: loadRes
// (result i gets id i+1; whether results are boxes or masks is decided by the first one:
// with a box, area = w*h and, without a mask, the box's polygon is the mask; without, area =
// the mask's area and bbox its box unless given), evaluate and accumulate, then summarize into
// Stats. GT masks come from Segmentation.ToRLELenient, as annToRLE. As in pycocotools, GT
// annotation ids should be unique and nonzero (a match is recorded by GT id, 0 meaning none).
// It is an error if a result's image is not in gt, a result lacks what the first one has, or
// (segm) a GT segmentation is empty or unreadable. Unlike pycocotools, empty results are no
// error: every category with GT then has precision and recall 0.
func Evaluate(gt *Dataset, results []Result, p Params) (*Eval, error) {
	if p.IoUType != "bbox" && p.IoUType != "segm" {
		return nil, fmt.Errorf("coco: iouType %q, want bbox or segm", p.IoUType)
	}
	if len(p.IoUThrs) == 0 || len(p.RecThrs) == 0 || len(p.MaxDets) == 0 || len(p.AreaRng) == 0 {
		return nil, fmt.Errorf("coco: params without IoU thresholds, recall thresholds, maxDets or area ranges")
	}
	images := map[int64]Image{}
	for _, im := range gt.Images {
		images[im.ID] = im
	}
	p.ImgIDs = slices.Clone(p.ImgIDs)
	if len(p.ImgIDs) == 0 {
		for _, im := range gt.Images {
			p.ImgIDs = append(p.ImgIDs, im.ID)
		}
	}
	slices.Sort(p.ImgIDs)
	p.ImgIDs = slices.Compact(p.ImgIDs)
	p.CatIDs = slices.Clone(p.CatIDs)
	if len(p.CatIDs) == 0 {
		for _, c := range gt.Categories {
			p.CatIDs = append(p.CatIDs, c.ID)
		}
	}
	slices.Sort(p.CatIDs)
	p.CatIDs = slices.Compact(p.CatIDs)
	p.MaxDets = slices.Clone(p.MaxDets)
	slices.Sort(p.MaxDets)
	segm := p.IoUType == "segm"

	// _prepare.
	wantImg := map[int64]bool{}
	for _, id := range p.ImgIDs {
		wantImg[id] = true
	}
	wantCat := map[int64]bool{}
	for _, id := range p.CatIDs {
		wantCat[id] = true
	}
	gts := map[imgCat][]*gtObj{}
	for _, a := range gt.Annotations {
		if !wantImg[a.ImageID] || (p.UseCats && !wantCat[a.CategoryID]) {
			continue
		}
		g := &gtObj{id: a.ID, area: a.Area, crowd: a.IsCrowd != 0, box: a.BBox}
		if segm {
			im, ok := images[a.ImageID]
			if !ok {
				return nil, fmt.Errorf("coco: GT annotation %d: image %d is not in images", a.ID, a.ImageID)
			}
			r, err := a.Segmentation.ToRLELenient(im.Height, im.Width)
			if err != nil {
				return nil, fmt.Errorf("coco: GT annotation %d: %w", a.ID, err)
			}
			g.rle = r
		}
		k := imgCat{a.ImageID, a.CategoryID}
		gts[k] = append(gts[k], g)
	}
	dts := map[imgCat][]*dtObj{}
	boxMode := len(results) > 0 && results[0].BBox != nil
	for i, r := range results {
		im, ok := images[r.ImageID]
		if !ok {
			return nil, fmt.Errorf("coco: result %d: image %d is not in the GT", i, r.ImageID)
		}
		d := &dtObj{id: int64(i + 1), score: r.Score}
		if boxMode {
			if r.BBox == nil {
				return nil, fmt.Errorf("coco: result %d has no bbox, and the first has", i)
			}
			d.box = *r.BBox
			d.area = d.box[2] * d.box[3]
			if segm {
				if r.Segmentation != nil {
					d.rle = *r.Segmentation
				} else {
					d.rle = FromBBox(d.box, im.Height, im.Width)
				}
			}
		} else {
			if r.Segmentation == nil {
				return nil, fmt.Errorf("coco: result %d has neither bbox nor segmentation", i)
			}
			d.rle = *r.Segmentation
			d.area = float64(d.rle.Area())
			if r.BBox != nil {
				d.box = *r.BBox
			} else {
				d.box = d.rle.ToBBox()
			}
		}
		if !wantImg[r.ImageID] || (p.UseCats && !wantCat[r.CategoryID]) {
			continue
		}
		k := imgCat{r.ImageID, r.CategoryID}
		dts[k] = append(dts[k], d)
	}
	catIDs := p.CatIDs
	if !p.UseCats {
		catIDs = []int64{-1}
	}
	lookup := func(img, cat int64) ([]*gtObj, []*dtObj) {
		if p.UseCats {
			k := imgCat{img, cat}
			return gts[k], dts[k]
		}
		var g []*gtObj
		var d []*dtObj
		for _, c := range p.CatIDs {
			g = append(g, gts[imgCat{img, c}]...)
			d = append(d, dts[imgCat{img, c}]...)
		}
		return g, d
	}
	maxDet := p.MaxDets[len(p.MaxDets)-1]
	T, R, K, A, M, I := len(p.IoUThrs), len(p.RecThrs), len(catIDs), len(p.AreaRng), len(p.MaxDets), len(p.ImgIDs)

	// evaluate: computeIoU then evaluateImg for each category, area range and image.
	evalImgs := make([]*evalImg, K*A*I)
	for i, img := range p.ImgIDs {
		for k, cat := range catIDs {
			g, d := lookup(img, cat)
			if len(g) == 0 && len(d) == 0 {
				continue
			}
			d = sortByScore(d)
			if len(d) > maxDet {
				d = d[:maxDet]
			}
			ious := computeIoU(g, d, segm)
			for a, rng := range p.AreaRng {
				evalImgs[(k*A+a)*I+i] = evaluateImg(g, d, ious, rng, p.IoUThrs)
			}
		}
	}

	// accumulate.
	e := &Eval{Params: p, Precision: make([]float64, T*R*K*A*M), Recall: make([]float64, T*K*A*M)}
	e.Params.CatIDs = catIDs
	for i := range e.Precision {
		e.Precision[i] = -1
	}
	for i := range e.Recall {
		e.Recall[i] = -1
	}
	for k := range K {
		for a := range A {
			for m, md := range p.MaxDets {
				accumulate(e, evalImgs[(k*A+a)*I:(k*A+a+1)*I], k, a, m, md)
			}
		}
	}
	e.Stats = e.summarize()
	return e, nil
}

// sortByScore returns d stably sorted by decreasing score (np.argsort(-score,
// kind='mergesort')).
func sortByScore(d []*dtObj) []*dtObj {
	d = slices.Clone(d)
	slices.SortStableFunc(d, func(a, b *dtObj) int { return cmp.Compare(-a.score, -b.score) })
	return d
}

// computeIoU is COCOeval.computeIoU on detections already sorted and cut: [D][G].
func computeIoU(g []*gtObj, d []*dtObj, segm bool) [][]float64 {
	crowd := make([]bool, len(g))
	for i, o := range g {
		crowd[i] = o.crowd
	}
	if segm {
		gr := make([]RLE, len(g))
		for i, o := range g {
			gr[i] = o.rle
		}
		dr := make([]RLE, len(d))
		for i, o := range d {
			dr[i] = o.rle
		}
		return IoU(dr, gr, crowd)
	}
	gb := make([][4]float64, len(g))
	for i, o := range g {
		gb[i] = o.box
	}
	db := make([][4]float64, len(d))
	for i, o := range d {
		db[i] = o.box
	}
	return BBoxIoU(db, gb, crowd)
}

// evaluateImg is COCOeval.evaluateImg for detections already sorted by score and cut to
// maxDets[-1], with their IoU with g (in g's order).
func evaluateImg(g []*gtObj, d []*dtObj, ious [][]float64, rng [2]float64, iouThrs []float64) *evalImg {
	for _, o := range g {
		o.ignore = o.crowd || o.area < rng[0] || o.area > rng[1]
	}
	gtind := make([]int, len(g))
	for i := range gtind {
		gtind[i] = i
	}
	slices.SortStableFunc(gtind, func(a, b int) int { return cmp.Compare(b2i(g[a].ignore), b2i(g[b].ignore)) })
	T, G, D := len(iouThrs), len(g), len(d)
	e := &evalImg{dtScores: make([]float64, D), gtIg: make([]bool, G), dtm: make([][]int64, T), dtIg: make([][]bool, T)}
	crowd := make([]bool, G)
	for j, gi := range gtind {
		e.gtIg[j] = g[gi].ignore
		crowd[j] = g[gi].crowd
	}
	for i, o := range d {
		e.dtScores[i] = o.score
	}
	for t, thr := range iouThrs {
		dtm := make([]int64, D)
		dtIg := make([]bool, D)
		gtm := make([]int64, G)
		if len(ious) > 0 {
			for di, dt := range d {
				iou := math.Min(thr, 1-1e-10)
				m := -1
				for j, gi := range gtind {
					if gtm[j] > 0 && !crowd[j] {
						continue
					}
					if m > -1 && !e.gtIg[m] && e.gtIg[j] {
						break
					}
					if ious[di][gi] < iou {
						continue
					}
					iou = ious[di][gi]
					m = j
				}
				if m == -1 {
					continue
				}
				dtIg[di] = e.gtIg[m]
				dtm[di] = g[gtind[m]].id
				gtm[m] = dt.id
			}
		}
		for di, dt := range d {
			if dtm[di] == 0 && (dt.area < rng[0] || dt.area > rng[1]) {
				dtIg[di] = true
			}
		}
		e.dtm[t], e.dtIg[t] = dtm, dtIg
	}
	return e
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}

// accumulate is COCOeval.accumulate for category k, area a and maxDets m = md over the
// images' records E.
func accumulate(e *Eval, E []*evalImg, k, a, m, md int) {
	p := e.Params
	T, R, K, A, M := len(p.IoUThrs), len(p.RecThrs), len(p.CatIDs), len(p.AreaRng), len(p.MaxDets)
	type det struct {
		score float64
		img   *evalImg
		j     int
	}
	var dets []det
	npig := 0
	seen := false
	for _, ei := range E {
		if ei == nil {
			continue
		}
		seen = true
		for j := 0; j < len(ei.dtScores) && j < md; j++ {
			dets = append(dets, det{ei.dtScores[j], ei, j})
		}
		for _, ig := range ei.gtIg {
			if !ig {
				npig++
			}
		}
	}
	if !seen || npig == 0 {
		return
	}
	slices.SortStableFunc(dets, func(x, y det) int { return cmp.Compare(-x.score, -y.score) })
	nd := len(dets)
	rc := make([]float64, nd)
	pr := make([]float64, nd)
	for t := range T {
		var tp, fp float64
		for i, d := range dets {
			matched := d.img.dtm[t][d.j] != 0
			ig := d.img.dtIg[t][d.j]
			if matched && !ig {
				tp++
			} else if !matched && !ig {
				fp++
			}
			rc[i] = tp / float64(npig)
			pr[i] = tp / (fp + tp + 2.220446049250313e-16)
		}
		rec := 0.0
		if nd > 0 {
			rec = rc[nd-1]
		}
		e.Recall[((t*K+k)*A+a)*M+m] = rec
		for i := nd - 1; i > 0; i-- {
			if pr[i] > pr[i-1] {
				pr[i-1] = pr[i]
			}
		}
		for r, thr := range p.RecThrs {
			// searchsorted left: the first i with rc[i] >= thr; none stops the filling.
			i, _ := slices.BinarySearch(rc, thr)
			q := 0.0
			if i < nd {
				q = pr[i]
			}
			e.Precision[(((t*R+r)*K+k)*A+a)*M+m] = q
			if i >= nd { // pycocotools' try/except leaves the rest 0
				for r2 := r + 1; r2 < R; r2++ {
					e.Precision[(((t*R+r2)*K+k)*A+a)*M+m] = 0
				}
				break
			}
		}
	}
}

// summarize is COCOeval.summarize's 12 stats.
func (e *Eval) summarize() []float64 {
	md := e.Params.MaxDets
	at := func(i int) int {
		if i < len(md) {
			return md[i]
		}
		return -1 // pycocotools raises IndexError; -1 matches no maxDets and gives -1
	}
	s := make([]float64, 12)
	for i, q := range summaryQueries(at) {
		s[i] = e.summarizeOne(q)
	}
	return s
}

type summaryQuery struct {
	ap      bool
	iouThr  float64 // 0 for all
	area    string
	maxDets int
}

func summaryQueries(at func(int) int) []summaryQuery {
	return []summaryQuery{
		{true, 0, "all", 100},
		{true, .5, "all", at(2)},
		{true, .75, "all", at(2)},
		{true, 0, "small", at(2)},
		{true, 0, "medium", at(2)},
		{true, 0, "large", at(2)},
		{false, 0, "all", at(0)},
		{false, 0, "all", at(1)},
		{false, 0, "all", at(2)},
		{false, 0, "small", at(2)},
		{false, 0, "medium", at(2)},
		{false, 0, "large", at(2)},
	}
}

// summarizeOne is _summarize: the mean of the entries above -1 of precision (ap) or recall
// at the IoU threshold equal to iouThr (all for 0), the area labelled area and maxDets, -1
// if there are none.
func (e *Eval) summarizeOne(q summaryQuery) float64 {
	p := e.Params
	var sum float64
	n := 0
	for t, thr := range p.IoUThrs {
		if q.iouThr != 0 && thr != q.iouThr {
			continue
		}
		for a, lbl := range p.AreaRngLbl {
			if lbl != q.area || a >= len(p.AreaRng) {
				continue
			}
			for m, mdv := range p.MaxDets {
				if mdv != q.maxDets {
					continue
				}
				for k := range p.CatIDs {
					if q.ap {
						for r := range p.RecThrs {
							if v := e.PrecisionAt(t, r, k, a, m); v > -1 {
								sum += v
								n++
							}
						}
					} else if v := e.RecallAt(t, k, a, m); v > -1 {
						sum += v
						n++
					}
				}
			}
		}
	}
	if n == 0 {
		return -1
	}
	return sum / float64(n)
}

// Summary returns the 12 lines pycocotools' summarize prints.
func (e *Eval) Summary() string {
	p := e.Params
	md := p.MaxDets
	at := func(i int) int {
		if i < len(md) {
			return md[i]
		}
		return -1
	}
	var sb strings.Builder
	for i, q := range summaryQueries(at) {
		title, typ := "Average Recall", "(AR)"
		if q.ap {
			title, typ = "Average Precision", "(AP)"
		}
		iou := fmt.Sprintf("%0.2f", q.iouThr)
		if q.iouThr == 0 && len(p.IoUThrs) > 0 {
			iou = fmt.Sprintf("%0.2f:%0.2f", p.IoUThrs[0], p.IoUThrs[len(p.IoUThrs)-1])
		}
		fmt.Fprintf(&sb, " %-18s %s @[ IoU=%-9s | area=%6s | maxDets=%3d ] = %0.3f\n", title, typ, iou, q.area, q.maxDets, e.Stats[i])
	}
	return sb.String()
}

package coco_test

import (
	"encoding/json"
	"errors"
	"math"
	"math/rand/v2"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/goselfsup/goselfsup/coco"
	"github.com/goselfsup/goselfsup/internal/cocofixture"
	"github.com/goselfsup/goselfsup/internal/pyref"
	"github.com/goselfsup/goselfsup/internal/shareddata"
)

// randomResults draws detections on d: jittered GT boxes (mostly of the GT's category) with
// the GT's mask shifted and sometimes dilated, random boxes with box-shaped masks, copies of
// earlier detections with the same score (ties), and a burst of 40 on one image (to exercise
// maxDets); scores are often rounded to 0.05 for more ties.
func randomResults(t *testing.T, d *coco.Dataset, n int, seed uint64) []coco.Result {
	rng := rand.New(rand.NewPCG(seed, 7))
	images := map[int64]coco.Image{}
	for _, im := range d.Images {
		images[im.ID] = im
	}
	var out []coco.Result
	score := func() float64 {
		s := rng.Float64()
		if rng.IntN(2) == 0 {
			s = math.Round(s*20) / 20
		}
		return s
	}
	randomCat := func() int64 { return d.Categories[rng.IntN(len(d.Categories))].ID }
	for len(out) < n {
		switch k := rng.IntN(8); {
		case k < 4: // a jittered GT
			a := d.Annotations[rng.IntN(len(d.Annotations))]
			im := images[a.ImageID]
			b := a.BBox
			box := [4]float64{b[0] + rng.NormFloat64()*0.1*b[2], b[1] + rng.NormFloat64()*0.1*b[3],
				b[2] * (1 + 0.15*rng.NormFloat64()), b[3] * (1 + 0.15*rng.NormFloat64())}
			box[2], box[3] = math.Max(box[2], 1), math.Max(box[3], 1)
			cat := a.CategoryID
			if rng.IntN(8) == 0 {
				cat = randomCat()
			}
			m := a.Segmentation.RLE.Decode()
			m = shift(m, im.Height, im.Width, rng.IntN(7)-3, rng.IntN(7)-3)
			if rng.IntN(3) == 0 {
				m = dilate(m, im.Height, im.Width)
			}
			r := coco.Encode(m, im.Height, im.Width)
			out = append(out, coco.Result{ImageID: a.ImageID, CategoryID: cat, BBox: &box, Score: score(), Segmentation: &r})
		case k < 6: // a random box
			im := d.Images[rng.IntN(len(d.Images))]
			w, h := 2+rng.Float64()*float64(im.Width)/2, 2+rng.Float64()*float64(im.Height)/2
			box := [4]float64{rng.Float64() * (float64(im.Width) - w), rng.Float64() * (float64(im.Height) - h), w, h}
			r := coco.FromBBox(box, im.Height, im.Width)
			out = append(out, coco.Result{ImageID: im.ID, CategoryID: randomCat(), BBox: &box, Score: score(), Segmentation: &r})
		default: // a tie with an earlier detection
			if len(out) == 0 {
				continue
			}
			p := out[rng.IntN(len(out))]
			if rng.IntN(2) == 0 {
				p.CategoryID = randomCat()
			}
			out = append(out, p)
		}
	}
	// A burst on the image with the most GT.
	count := map[int64]int{}
	var busy int64
	for _, a := range d.Annotations {
		if count[a.ImageID]++; count[a.ImageID] > count[busy] {
			busy = a.ImageID
		}
	}
	for _, a := range d.Annotations {
		if a.ImageID != busy {
			continue
		}
		for range 3 {
			b := a.BBox
			box := [4]float64{b[0] + rng.NormFloat64()*0.05*b[2], b[1] + rng.NormFloat64()*0.05*b[3], b[2], b[3]}
			r := *a.Segmentation.RLE
			if rng.IntN(2) == 0 {
				im := images[busy]
				r = coco.Encode(shift(r.Decode(), im.Height, im.Width, rng.IntN(5)-2, rng.IntN(5)-2), im.Height, im.Width)
			}
			out = append(out, coco.Result{ImageID: busy, CategoryID: a.CategoryID, BBox: &box, Score: score(), Segmentation: &r})
		}
	}
	return out
}

func shift(m []uint8, h, w, dy, dx int) []uint8 {
	out := make([]uint8, len(m))
	for y := range h {
		for x := range w {
			if sy, sx := y-dy, x-dx; sy >= 0 && sy < h && sx >= 0 && sx < w {
				out[y*w+x] = m[sy*w+sx]
			}
		}
	}
	return out
}

func dilate(m []uint8, h, w int) []uint8 {
	out := make([]uint8, len(m))
	for y := range h {
		for x := range w {
			for _, o := range [][2]int{{0, 0}, {0, 1}, {0, -1}, {1, 0}, {-1, 0}} {
				if sy, sx := y+o[0], x+o[1]; sy >= 0 && sy < h && sx >= 0 && sx < w && m[sy*w+sx] != 0 {
					out[y*w+x] = 1
				}
			}
		}
	}
	return out
}

// TestEvaluateAgainstReference compares the 12 stats with benchmarks/coco_eval_reference.py
// on COCO128 val2017 and random detections, for bbox (two maxDets lists) and segm.
func TestEvaluateAgainstReference(t *testing.T) {
	py, err := pyref.Python("numpy")
	if err != nil {
		t.Skip(err)
	}
	root, err := shareddata.Dir("coco128-lightly")
	if errors.Is(err, shareddata.ErrAbsent) {
		t.Skip(err)
	}
	if err != nil {
		t.Fatal(err)
	}
	gt, err := cocofixture.FromCOCO128(root, "val2017")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	gtPath := filepath.Join(dir, "instances_val2017.json")
	if err := gt.Write(gtPath); err != nil {
		t.Fatal(err)
	}
	script, err := filepath.Abs(filepath.Join("..", "benchmarks", "coco_eval_reference.py"))
	if err != nil {
		t.Fatal(err)
	}
	results := randomResults(t, gt, 900, 11)
	// segm results carry masks only (as mmdet's); "segm-boxes" evaluates masks with box
	// results, which pycocotools rasterises as the boxes' polygons. maxDets [1, 10, 100] is
	// run for bbox only (its handling does not depend on the IoU type; segm is the slow one).
	for _, c := range []struct {
		iouType string
		maxDets []int
	}{{"bbox", []int{100, 300, 1000}}, {"bbox", []int{1, 10, 100}}, {"segm", []int{100, 300, 1000}},
		{"segm-boxes", []int{100, 300, 1000}}} {
		rs := make([]coco.Result, len(results))
		for i, r := range results {
			if c.iouType == "segm" {
				r.BBox = nil
			} else {
				r.Segmentation = nil
			}
			rs[i] = r
		}
		boxesOnly := c.iouType == "segm-boxes"
		if boxesOnly {
			c.iouType = "segm"
		}
		resPath := filepath.Join(dir, "results_"+c.iouType+strconv.FormatBool(boxesOnly)+".json")
		if err := coco.WriteResults(resPath, rs); err != nil {
			t.Fatal(err)
		}
		back, err := coco.ReadResults(resPath)
		if err != nil || len(back) != len(rs) {
			t.Fatalf("ReadResults: %d results, %v", len(back), err)
		}
		p := coco.DefaultParams(c.iouType)
		p.MaxDets = c.maxDets
		e, err := coco.Evaluate(gt, back, p)
		if err != nil {
			t.Fatal(err)
		}
		md := make([]string, len(c.maxDets))
		for i, m := range c.maxDets {
			md[i] = strconv.Itoa(m)
		}
		cmd := exec.Command(py, script, gtPath, resPath, c.iouType, strings.Join(md, ","))
		var stderr strings.Builder
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("%s: %v\n%s", script, err, stderr.String())
		}
		var ref struct{ Stats []float64 }
		if err := json.Unmarshal(out, &ref); err != nil {
			t.Fatal(err)
		}
		t.Logf("%s maxDets %v:\n%s reference %.4f", c.iouType, c.maxDets, e.Summary(), ref.Stats)
		worst := 0.0
		for i := range 12 {
			worst = math.Max(worst, math.Abs(e.Stats[i]-ref.Stats[i]))
			if math.Abs(e.Stats[i]-ref.Stats[i]) > 1e-4 {
				t.Errorf("%s maxDets %v: stats[%d] = %.6f, reference %.6f", c.iouType, c.maxDets, i, e.Stats[i], ref.Stats[i])
			}
		}
		t.Logf("%s (box results %v) maxDets %v: largest difference %.3g", c.iouType, boxesOnly, c.maxDets, worst)
	}
}

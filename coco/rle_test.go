package coco

import (
	"bytes"
	"encoding/json"
	"errors"
	"math"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/goselfsup/goselfsup/internal/pyref"
)

// TestSquare3x3 is a hand case: the 3x3 mask
//
//	0 0 0
//	0 1 1
//	0 1 1
//
// read column by column is 000 011 011, runs 4 zeros, 2 ones, 1 zero, 2 ones. The string
// codes 4, 2, 1 as '4', '2', '1' (48 + n, below 16 so one character each, no sign bit) and
// the fourth count as its delta to the second, 2-2 = 0, '0'. Its box is x 1, y 1, 2 x 2.
func TestSquare3x3(t *testing.T) {
	m := []uint8{0, 0, 0, 0, 1, 1, 0, 5, 1}
	r := Encode(m, 3, 3)
	if !slices.Equal(r.Counts, []uint32{4, 2, 1, 2}) {
		t.Fatalf("counts %v, want [4 2 1 2]", r.Counts)
	}
	if s := r.String(); s != "4210" {
		t.Errorf("string %q, want \"4210\"", s)
	}
	if r.Area() != 4 {
		t.Errorf("area %d, want 4", r.Area())
	}
	if b := r.ToBBox(); b != [4]float64{1, 1, 2, 2} {
		t.Errorf("bbox %v, want [1 1 2 2]", b)
	}
	want := []uint8{0, 0, 0, 0, 1, 1, 0, 1, 1}
	if d := r.Decode(); !slices.Equal(d, want) {
		t.Errorf("decode %v, want %v", d, want)
	}
	back, err := RLEFromString("4210", 3, 3)
	if err != nil || !slices.Equal(back.Counts, r.Counts) {
		t.Errorf("RLEFromString: %v %v", back.Counts, err)
	}
	// The square polygon (0.5,0.5)-(2.5,2.5) covers the centres of pixels 1..2 in both axes.
	p, err := FromPolygon([]float64{0.5, 0.5, 0.5, 2.5, 2.5, 2.5, 2.5, 0.5}, 3, 3)
	if err != nil || !slices.Equal(p.Counts, r.Counts) {
		t.Errorf("FromPolygon: %v %v, want %v", p.Counts, err, r.Counts)
	}
}

// TestStringLarge checks multi-character counts, derived by hand: 100 = 0b11_00100 is the
// groups 00100 (4) then 00011 (3); the first has more following: 4+32+48 = 84 'T', then
// 3+48 = '3'. A negative delta: counts [0, 100, 5, 30] give 0 -> '0', 100 -> "T3", 5 -> '5',
// 30-100 = -70, groups of -70 (two's complement ...1110111010): 11010 = 26 with -70>>5 = -3
// (not -1, more): 26+32+48 = 106 'j'; then -3: 11101 = 29, -3>>5 = -1 and bit 0x10 set, done:
// 29+48 = 77 'M'.
func TestStringLarge(t *testing.T) {
	r := RLE{H: 15, W: 9, Counts: []uint32{0, 100, 5, 30}}
	if s := r.String(); s != "0T35jM" {
		t.Fatalf("string %q, want \"0T35jM\"", s)
	}
	back, err := RLEFromString("0T35jM", 15, 9)
	if err != nil || !slices.Equal(back.Counts, r.Counts) {
		t.Fatalf("RLEFromString: %v %v", back.Counts, err)
	}
}

func TestRLEFromStringErrors(t *testing.T) {
	for _, c := range []struct {
		s    string
		h, w int
		want string
	}{
		{"4210", 3, 4, "sum to 9"},
		{"42 0", 3, 3, "not in"},
		{"4T", 3, 3, "cut short"},
		{"0M", 3, 3, "count 1 is -3"},
	} {
		_, err := RLEFromString(c.s, c.h, c.w)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("RLEFromString(%q, %d, %d): %v, want an error with %q", c.s, c.h, c.w, err, c.want)
		}
	}
}

func TestFromPolygonErrors(t *testing.T) {
	for _, p := range [][]float64{{1, 2, 3, 4}, {1, 2, 3, 4, 5}, {}, {1, 2, 3, 4, math.NaN(), 1}} {
		if _, err := FromPolygon(p, 10, 10); !errors.Is(err, ErrBadPolygon) {
			t.Errorf("FromPolygon(%v): %v, want ErrBadPolygon", p, err)
		}
	}
}

// maskRef runs benchmarks/coco_mask_reference.py.
func maskRef(t *testing.T, req any, ans any) {
	t.Helper()
	py, err := pyref.Python("numpy")
	if err != nil {
		t.Skip(err)
	}
	script, err := filepath.Abs(filepath.Join("..", "benchmarks", "coco_mask_reference.py"))
	if err != nil {
		t.Fatal(err)
	}
	in, err := json.Marshal(req)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(py, script)
	cmd.Stdin = bytes.NewReader(in)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("%s: %v\n%s", script, err, stderr.String())
	}
	if err := json.Unmarshal(out, ans); err != nil {
		t.Fatal(err)
	}
}

type refMask struct {
	H    int   `json:"h"`
	W    int   `json:"w"`
	Data []int `json:"data"`
}

type refPoly struct {
	H    int       `json:"h"`
	W    int       `json:"w"`
	Poly []float64 `json:"poly"`
}

type refIoU struct {
	Dt    []int `json:"dt"`
	Gt    []int `json:"gt"`
	Crowd []int `json:"crowd"`
}

// randomMask draws an h x w mask: noise of a random density, or a few filled rectangles.
func randomMask(rng *rand.Rand, h, w int) []uint8 {
	m := make([]uint8, h*w)
	switch rng.IntN(3) {
	case 0:
		p := rng.Float64()
		for i := range m {
			if rng.Float64() < p {
				m[i] = 1
			}
		}
	case 1:
		for k := rng.IntN(4); k >= 0; k-- {
			y0, x0 := rng.IntN(h), rng.IntN(w)
			y1, x1 := y0+rng.IntN(h-y0)+1, x0+rng.IntN(w-x0)+1
			for y := y0; y < y1; y++ {
				for x := x0; x < x1; x++ {
					m[y*w+x] = 1
				}
			}
		}
	case 2: // empty or full
		if rng.IntN(2) == 0 {
			for i := range m {
				m[i] = 1
			}
		}
	}
	return m
}

func TestMasksAgainstReference(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	var req struct {
		Masks []refMask `json:"masks"`
		Polys []refPoly `json:"polys"`
		IoUs  []refIoU  `json:"ious"`
	}
	sizes := [][2]int{{1, 1}, {1, 7}, {6, 1}, {3, 3}, {17, 23}, {40, 31}, {64, 64}}
	for i := 0; i < 120; i++ {
		s := sizes[i%len(sizes)]
		m := randomMask(rng, s[0], s[1])
		if i%5 == 0 { // values other than 0 and 1 count as 1
			for j := range m {
				m[j] *= uint8(1 + rng.IntN(200))
			}
		}
		data := make([]int, len(m))
		for j, v := range m {
			data[j] = int(v)
		}
		req.Masks = append(req.Masks, refMask{s[0], s[1], data})
	}
	for i := 0; i < 300; i++ {
		h, w := 1+rng.IntN(60), 1+rng.IntN(60)
		n := 3 + rng.IntN(10)
		p := make([]float64, 2*n)
		grid := rng.IntN(3) // real, integer and half-integer coordinates
		for j := range p {
			lim := float64(w)
			if j%2 == 1 {
				lim = float64(h)
			}
			v := -3 + rng.Float64()*(lim+6)
			switch grid {
			case 1:
				v = math.Round(v)
			case 2:
				v = math.Round(v) + 0.5
			}
			p[j] = v
		}
		if i%10 == 0 { // a repeated vertex
			p[2], p[3] = p[0], p[1]
		}
		req.Polys = append(req.Polys, refPoly{h, w, p})
	}
	// Image-sized polygons, like COCO's: a star-shaped ring of 20 to 60 vertices with two
	// decimals, partly outside the image.
	for range 12 {
		h, w := 300+rng.IntN(340), 300+rng.IntN(340)
		n := 20 + rng.IntN(41)
		cx, cy := rng.Float64()*float64(w), rng.Float64()*float64(h)
		p := make([]float64, 0, 2*n)
		for j := range n {
			a := 2 * math.Pi * float64(j) / float64(n)
			rad := 20 + rng.Float64()*150
			p = append(p, math.Round((cx+rad*math.Cos(a))*100)/100, math.Round((cy+rad*math.Sin(a))*100)/100)
		}
		req.Polys = append(req.Polys, refPoly{h, w, p})
	}
	// IoU groups of masks of one size.
	for s := range sizes {
		var idx []int
		for i := s; i < len(req.Masks); i += len(sizes) {
			idx = append(idx, i)
		}
		dt, gt := idx[:len(idx)/2], idx[len(idx)/2:]
		crowd := make([]int, len(gt))
		for i := range crowd {
			crowd[i] = rng.IntN(2)
		}
		req.IoUs = append(req.IoUs, refIoU{dt, gt, crowd})
	}
	var ans struct {
		Masks []struct {
			Counts []uint32   `json:"counts"`
			String string     `json:"string"`
			Area   uint64     `json:"area"`
			BBox   [4]float64 `json:"bbox"`
		} `json:"masks"`
		Polys []struct {
			Counts []uint32 `json:"counts"`
		} `json:"polys"`
		IoUs [][][]float64 `json:"ious"`
	}
	maskRef(t, req, &ans)

	rles := make([]RLE, len(req.Masks))
	for i, m := range req.Masks {
		want := ans.Masks[i]
		raw := make([]uint8, len(m.Data))
		for j, v := range m.Data {
			raw[j] = uint8(v)
		}
		r := Encode(raw, m.H, m.W)
		rles[i] = r
		if !slices.Equal(r.Counts, want.Counts) {
			t.Errorf("mask %d (%dx%d): counts %v, want %v", i, m.H, m.W, r.Counts, want.Counts)
			continue
		}
		if s := r.String(); s != want.String {
			t.Errorf("mask %d: string %q, want %q", i, s, want.String)
		}
		back, err := RLEFromString(want.String, m.H, m.W)
		if err != nil || !slices.Equal(back.Counts, r.Counts) {
			t.Errorf("mask %d: RLEFromString(%q) = %v, %v", i, want.String, back.Counts, err)
		}
		if r.Area() != want.Area {
			t.Errorf("mask %d: area %d, want %d", i, r.Area(), want.Area)
		}
		if b := r.ToBBox(); b != want.BBox {
			t.Errorf("mask %d: bbox %v, want %v", i, b, want.BBox)
		}
		norm := make([]uint8, len(m.Data))
		for j, v := range m.Data {
			if v != 0 {
				norm[j] = 1
			}
		}
		if d := r.Decode(); !slices.Equal(d, norm) {
			t.Errorf("mask %d: decode differs", i)
		}
	}
	nonEmpty := 0
	for i, p := range req.Polys {
		r, err := FromPolygon(p.Poly, p.H, p.W)
		if err != nil {
			t.Fatal(err)
		}
		if r.Area() > 0 {
			nonEmpty++
		}
		if !slices.Equal(r.Counts, ans.Polys[i].Counts) {
			t.Errorf("polygon %d (%dx%d) %v: counts %v, want %v", i, p.H, p.W, p.Poly, r.Counts, ans.Polys[i].Counts)
		}
	}
	if nonEmpty < len(req.Polys)*3/4 {
		t.Errorf("only %d of %d polygons cover pixels", nonEmpty, len(req.Polys))
	}
	for k, q := range req.IoUs {
		var dt, gt []RLE
		for _, d := range q.Dt {
			dt = append(dt, rles[d])
		}
		crowd := make([]bool, len(q.Gt))
		for i, g := range q.Gt {
			gt = append(gt, rles[g])
			crowd[i] = q.Crowd[i] == 1
		}
		got := IoU(dt, gt, crowd)
		for d := range dt {
			for g := range gt {
				if math.Abs(got[d][g]-ans.IoUs[k][d][g]) > 1e-12 {
					t.Errorf("iou group %d [%d][%d]: %v, want %v", k, d, g, got[d][g], ans.IoUs[k][d][g])
				}
			}
		}
	}
}

// TestMerge compares Merge with the pixelwise OR and AND of the decoded masks.
func TestMerge(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	for i := 0; i < 50; i++ {
		h, w := 1+rng.IntN(20), 1+rng.IntN(20)
		n := 2 + rng.IntN(3)
		rles := make([]RLE, n)
		or := make([]uint8, h*w)
		and := make([]uint8, h*w)
		for j := range and {
			and[j] = 1
		}
		for k := range rles {
			m := randomMask(rng, h, w)
			rles[k] = Encode(m, h, w)
			for j, v := range m {
				or[j] |= v
				and[j] &= v
			}
		}
		if got := Merge(rles, false); !slices.Equal(got.Counts, Encode(or, h, w).Counts) {
			t.Errorf("case %d: union %v, want %v", i, got.Counts, Encode(or, h, w).Counts)
		}
		if got := Merge(rles, true); !slices.Equal(got.Counts, Encode(and, h, w).Counts) {
			t.Errorf("case %d: intersection %v, want %v", i, got.Counts, Encode(and, h, w).Counts)
		}
	}
	if got := Merge([]RLE{{H: 2, W: 2, Counts: []uint32{4}}, {H: 2, W: 3, Counts: []uint32{6}}}, false); got.H != 0 || got.W != 0 || len(got.Counts) != 0 {
		t.Errorf("sizes differ: %+v, want the empty RLE", got)
	}
}

// TestIoUHand: a 4x4 detection covering rows 0-1 (8 pixels) and a GT covering rows 1-3 (12
// pixels) share row 1 (4 pixels): IoU 4/(8+12-4) = 0.25; as a crowd GT 4/8 = 0.5. The boxes
// [0,0,4,2] and [0,1,4,3] give the same numbers through BBoxIoU; a box that only touches
// gives 0. Masks of different sizes whose boxes overlap give -1.
func TestIoUHand(t *testing.T) {
	d := make([]uint8, 16)
	g := make([]uint8, 16)
	for i := 0; i < 8; i++ {
		d[i] = 1
	}
	for i := 4; i < 16; i++ {
		g[i] = 1
	}
	dt, gt := Encode(d, 4, 4), Encode(g, 4, 4)
	o := IoU([]RLE{dt}, []RLE{gt, gt}, []bool{false, true})
	if o[0][0] != 0.25 || o[0][1] != 0.5 {
		t.Errorf("mask IoU %v, want [[0.25 0.5]]", o)
	}
	b := BBoxIoU([][4]float64{{0, 0, 4, 2}}, [][4]float64{{0, 1, 4, 3}, {0, 1, 4, 3}, {4, 0, 2, 2}}, []bool{false, true, false})
	if b[0][0] != 0.25 || b[0][1] != 0.5 || b[0][2] != 0 {
		t.Errorf("box IoU %v, want [[0.25 0.5 0]]", b)
	}
	other := Encode(make([]uint8, 20), 4, 5)
	other.Counts = []uint32{0, 20}
	if o := IoU([]RLE{dt}, []RLE{other}, nil); o[0][0] != -1 {
		t.Errorf("sizes differ: %v, want -1", o)
	}
	if IoU(nil, []RLE{gt}, nil) != nil {
		t.Error("no detections: want nil")
	}
}

func TestFromBBox(t *testing.T) {
	// The box x 1..3, y 0..2 of a 3x4 image covers pixels x 1, 2 and y 0, 1: columns 1 and
	// 2 hold rows 0-1, so the runs are 3 zeros (column 0), 2 ones, 1 zero, 2 ones, 4 zeros.
	r := FromBBox([4]float64{1, 0, 2, 2}, 3, 4)
	if !slices.Equal(r.Counts, []uint32{3, 2, 1, 2, 4}) {
		t.Errorf("counts %v, want [3 2 1 2 4]", r.Counts)
	}
}

const sampleJSON = `{"info": {"year": 2017}, "licenses": [{"id": 1}],
"images": [{"id": 7, "file_name": "a.jpg", "width": 4, "height": 3, "license": 1}],
"annotations": [
 {"id": 1, "image_id": 7, "category_id": 2, "bbox": [1, 0, 2, 2], "area": 4, "iscrowd": 0,
  "segmentation": [[1, 0, 1, 2, 3, 2, 3, 0]]},
 {"id": 2, "image_id": 7, "category_id": 2, "bbox": [0, 0, 1, 3], "area": 3, "iscrowd": 1,
  "segmentation": {"counts": [0, 3, 9], "size": [3, 4]}},
 {"id": 3, "image_id": 7, "category_id": 3, "bbox": [1, 1, 2, 2], "area": 4, "iscrowd": 0,
  "segmentation": {"counts": "42102", "size": [3, 4]}},
 {"id": 4, "image_id": 7, "category_id": 3, "bbox": [1, 1, 2, 2], "area": 4, "iscrowd": 0}
],
"categories": [{"id": 2, "name": "b", "supercategory": "s"}, {"id": 3, "name": "c", "supercategory": "s"}]}`

func TestLoadWrite(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "in.json")
	if err := os.WriteFile(path, []byte(sampleJSON), 0o644); err != nil {
		t.Fatal(err)
	}
	d, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	check := func(d *Dataset) {
		t.Helper()
		if len(d.Images) != 1 || d.Images[0] != (Image{ID: 7, FileName: "a.jpg", Width: 4, Height: 3}) {
			t.Fatalf("images %+v", d.Images)
		}
		if len(d.Annotations) != 4 || len(d.Categories) != 2 || d.Categories[1] != (Category{3, "c", "s"}) {
			t.Fatalf("annotations %+v categories %+v", d.Annotations, d.Categories)
		}
		a := d.Annotations
		if a[0].BBox != [4]float64{1, 0, 2, 2} || a[1].IsCrowd != 1 || a[0].Area != 4 {
			t.Errorf("fields %+v", a[:2])
		}
		// Polygon x 1..3, y 0..2 in 3x4 (see TestFromBBox).
		r0, err := a[0].Segmentation.ToRLE(3, 4)
		if err != nil || !slices.Equal(r0.Counts, []uint32{3, 2, 1, 2, 4}) {
			t.Errorf("polygon: %v %v", r0.Counts, err)
		}
		r1, err := a[1].Segmentation.ToRLE(3, 4)
		if err != nil || !slices.Equal(r1.Counts, []uint32{0, 3, 9}) {
			t.Errorf("uncompressed RLE: %v %v", r1.Counts, err)
		}
		// "42102": 4, 2, 1, then deltas against the count two back: 0+2 = 2, 2+1 = 3.
		r2, err := a[2].Segmentation.ToRLE(3, 4)
		if err != nil || !slices.Equal(r2.Counts, []uint32{4, 2, 1, 2, 3}) {
			t.Errorf("compressed RLE: %v %v", r2.Counts, err)
		}
		if _, err := a[3].Segmentation.ToRLE(3, 4); !errors.Is(err, ErrNoSegmentation) {
			t.Errorf("no segmentation: %v", err)
		}
		if _, err := a[1].Segmentation.ToRLE(4, 3); err == nil {
			t.Error("RLE of another size: no error")
		}
	}
	check(d)
	out := filepath.Join(dir, "sub", "out.json")
	if err := d.Write(out); err != nil {
		t.Fatal(err)
	}
	d2, err := Load(out)
	if err != nil {
		t.Fatal(err)
	}
	check(d2)
	if string(d2.Info) != `{"year": 2017}` && string(d2.Info) != `{"year":2017}` {
		t.Errorf("info %s", d2.Info)
	}
}

func TestLoadErrors(t *testing.T) {
	dir := t.TempDir()
	for _, c := range []struct{ json, want string }{
		{`{"images": [}`, "at byte"},
		{`{"annotations": [{"id": 42, "segmentation": {"counts": [1, 2], "size": [2, 2]}}]}`, "annotation 42"},
		{`{"annotations": [{"id": 43, "segmentation": {"counts": "4!", "size": [3, 3]}}]}`, "annotation 43"},
		{`{"annotations": [{"id": 44, "bbox": "x"}]}`, "annotation 44"},
	} {
		path := filepath.Join(dir, "bad.json")
		os.WriteFile(path, []byte(c.json), 0o644)
		_, err := Load(path)
		if err == nil || !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), path) ||
			(c.want != "at byte" && strings.Contains(err.Error(), "at byte")) {
			t.Errorf("Load(%s): %v, want an error naming the file and %q", c.json, err, c.want)
		}
	}
}

// TestToRLELenient: pycocotools' readings of polygons FromPolygon refuses. Four numbers are a
// box: [1,0,2,2] in 3x4 is TestFromBBox's mask. An odd last number is dropped: the triangle
// (0.5,0.5), (2.5,0.5), (2.5,2.5) plus a stray 7 rasterises as without it. An RLE of another
// size is kept at its size.
func TestToRLELenient(t *testing.T) {
	r, err := Segmentation{Polygons: [][]float64{{1, 0, 2, 2}}}.ToRLELenient(3, 4)
	if err != nil || !slices.Equal(r.Counts, []uint32{3, 2, 1, 2, 4}) {
		t.Errorf("box polygon: %v %v", r.Counts, err)
	}
	tri := []float64{0.5, 0.5, 2.5, 0.5, 2.5, 2.5}
	want, _ := FromPolygon(tri, 5, 5)
	r, err = Segmentation{Polygons: [][]float64{append(slices.Clone(tri), 7)}}.ToRLELenient(5, 5)
	if err != nil || !slices.Equal(r.Counts, want.Counts) {
		t.Errorf("odd polygon: %v %v, want %v", r.Counts, err, want.Counts)
	}
	other := RLE{H: 2, W: 2, Counts: []uint32{1, 3}}
	r, err = Segmentation{RLE: &other}.ToRLELenient(5, 5)
	if err != nil || r.H != 2 || r.W != 2 {
		t.Errorf("RLE of another size: %+v %v", r, err)
	}
	if _, err := (Segmentation{Polygons: [][]float64{{1, 0, 2, 2}, {1, 2, 3, 4, 5, 6}}}).ToRLELenient(3, 4); !errors.Is(err, ErrBadPolygon) {
		t.Errorf("box then polygon: %v", err)
	}
	if _, err := (Segmentation{}).ToRLELenient(3, 4); !errors.Is(err, ErrNoSegmentation) {
		t.Errorf("empty: %v", err)
	}
	if d := (RLE{H: 0, W: 3, Counts: []uint32{0, 0}}).Decode(); len(d) != 0 {
		t.Errorf("0x3 decode: %v", d)
	}
}

func TestImageAnnotations(t *testing.T) {
	d := &Dataset{Annotations: []Annotation{{ID: 1, ImageID: 5}, {ID: 2, ImageID: 6}, {ID: 3, ImageID: 5}}}
	m := d.ImageAnnotations()
	if len(m[5]) != 2 || m[5][0].ID != 1 || m[5][1].ID != 3 || len(m[6]) != 1 || m[6][0] != &d.Annotations[1] {
		t.Errorf("ImageAnnotations: %v", m)
	}
}

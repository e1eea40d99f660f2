package coco

import (
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
)

// RLE is a run-length encoded binary mask of H rows and W columns, as pycocotools stores it:
// the pixels are read in column-major (Fortran) order and Counts holds the lengths of the
// alternating runs, starting with a run of zeros (which may be empty). The counts of a valid
// RLE sum to H*W.
type RLE struct {
	H, W   int
	Counts []uint32
}

// Encode run-length encodes mask, a row-major h x w bitmap in which every nonzero byte is a
// one (maskApi's rleEncode, which reads the mask in column-major order). It panics if
// len(mask) is not h*w.
func Encode(mask []uint8, h, w int) RLE {
	if len(mask) != h*w {
		panic(fmt.Sprintf("coco.Encode: mask has %d bytes, want %d x %d", len(mask), h, w))
	}
	counts := make([]uint32, 0, 16)
	var prev uint8
	var c uint32
	for x := 0; x < w; x++ {
		for y := 0; y < h; y++ {
			v := mask[y*w+x]
			if v != 0 {
				v = 1
			}
			if v != prev {
				counts = append(counts, c)
				c, prev = 0, v
			}
			c++
		}
	}
	counts = append(counts, c)
	return RLE{H: h, W: w, Counts: counts}
}

// Decode returns the mask as a row-major H x W bitmap of 0 and 1 (maskApi's rleDecode).
// Counts that sum to more than H*W are cut at H*W.
func (r RLE) Decode() []uint8 {
	n := r.H * r.W
	m := make([]uint8, n)
	if n == 0 {
		return m
	}
	p := 0 // position in column-major order
	for i, c := range r.Counts {
		end := min(p+int(c), n)
		if i%2 == 1 {
			x, y := p/r.H, p%r.H
			for ; p < end; p++ {
				m[y*r.W+x] = 1
				if y++; y == r.H {
					y, x = 0, x+1
				}
			}
		}
		p = end
	}
	return m
}

// Area is the number of ones (maskApi's rleArea).
func (r RLE) Area() uint64 {
	var a uint64
	for i := 1; i < len(r.Counts); i += 2 {
		a += uint64(r.Counts[i])
	}
	return a
}

// Validate reports an error if the counts do not sum to H*W or the size is negative.
func (r RLE) Validate() error {
	if r.H < 0 || r.W < 0 {
		return fmt.Errorf("coco: RLE size %dx%d is negative", r.H, r.W)
	}
	var s uint64
	for _, c := range r.Counts {
		s += uint64(c)
	}
	if s != uint64(r.H)*uint64(r.W) {
		return fmt.Errorf("coco: RLE counts sum to %d, want %d x %d = %d", s, r.H, r.W, r.H*r.W)
	}
	return nil
}

// ToBBox returns the mask's bounding box [x, y, w, h] in pixels (maskApi's rleToBbox): the
// box of the pixels that are one, all zeros for an empty mask. As in maskApi, a run of ones
// that spans columns makes the box span all rows.
func (r RLE) ToBBox() [4]float64 {
	h := uint32(r.H)
	m := len(r.Counts) / 2 * 2
	if m == 0 || h == 0 {
		return [4]float64{}
	}
	xs, ys := uint32(r.W), h
	var xe, ye, cc, xp uint32
	for j := 0; j < m; j++ {
		cc += r.Counts[j]
		t := cc - uint32(j%2)
		y := t % h
		x := (t - y) / h
		if j%2 == 0 {
			xp = x
		} else if xp < x {
			ys, ye = 0, h-1
		}
		xs, xe = min(xs, x), max(xe, x)
		ys, ye = min(ys, y), max(ye, y)
	}
	return [4]float64{float64(xs), float64(ys), float64(xe - xs + 1), float64(ye - ys + 1)}
}

// String returns the counts in pycocotools' compressed form (maskApi's rleToString): each
// count, minus the count two places earlier from the fourth on, as a LEB128-like sequence of
// 5-bit groups, each character 48 plus the group, plus 32 when more follow.
func (r RLE) String() string {
	var sb strings.Builder
	for i, c := range r.Counts {
		x := int64(c)
		if i > 2 {
			x -= int64(r.Counts[i-2])
		}
		for more := true; more; {
			ch := byte(x & 0x1f)
			x >>= 5
			if ch&0x10 != 0 {
				more = x != -1
			} else {
				more = x != 0
			}
			if more {
				ch |= 0x20
			}
			sb.WriteByte(ch + 48)
		}
	}
	return sb.String()
}

// RLEFromString parses pycocotools' compressed counts string (maskApi's rleFrString) of an
// h x w mask. It is an error if the string is malformed (a character outside '0'..'o', a
// count cut short), a count is negative or too large, or the counts do not sum to h*w.
func RLEFromString(s string, h, w int) (RLE, error) {
	var counts []uint32
	for p := 0; p < len(s); {
		var x int64
		k := 0
		for more := true; more; {
			if p >= len(s) {
				return RLE{}, fmt.Errorf("coco: RLE string %s: count %d is cut short", abbrev(s), len(counts))
			}
			if s[p] < 48 || s[p] > 48+63 {
				return RLE{}, fmt.Errorf("coco: RLE string %s: byte %d (%q) is not in '0'..'o'", abbrev(s), p, s[p])
			}
			if k >= 8 {
				return RLE{}, fmt.Errorf("coco: RLE string %s: count %d is too long", abbrev(s), len(counts))
			}
			c := int64(s[p] - 48)
			x |= (c & 0x1f) << (5 * k)
			more = c&0x20 != 0
			p++
			k++
			if !more && c&0x10 != 0 {
				x |= -1 << (5 * k)
			}
		}
		if len(counts) > 2 {
			x += int64(counts[len(counts)-2])
		}
		if x < 0 || x > math.MaxUint32 {
			return RLE{}, fmt.Errorf("coco: RLE string %s: count %d is %d", abbrev(s), len(counts), x)
		}
		counts = append(counts, uint32(x))
	}
	r := RLE{H: h, W: w, Counts: counts}
	if err := r.Validate(); err != nil {
		return RLE{}, fmt.Errorf("RLE string %s: %w", abbrev(s), err)
	}
	return r, nil
}

func abbrev(s string) string {
	if len(s) > 40 {
		return fmt.Sprintf("%q...", s[:40])
	}
	return fmt.Sprintf("%q", s)
}

// ErrBadPolygon is wrapped by FromPolygon's errors.
var ErrBadPolygon = errors.New("bad polygon")

// FromPolygon rasterises the polygon x0, y0, x1, y1, ... in an h x w mask exactly as maskApi's
// rleFrPoly does: the vertices are scaled by 5 and rounded, the boundary is traced densely
// on that grid, and the pixels of a column are those whose centres lie between the points
// where the boundary crosses it. A polygon with an odd number of coordinates, fewer than
// three points, or a coordinate that is not finite or exceeds 1e6 in magnitude is an error
// wrapping ErrBadPolygon (pycocotools would instead read four numbers as a box and drop an
// odd last one: see Segmentation.ToRLELenient); callers decide whether to skip it.
func FromPolygon(poly []float64, h, w int) (RLE, error) {
	if len(poly)%2 != 0 {
		return RLE{}, fmt.Errorf("coco: %w: %d coordinates, an odd number", ErrBadPolygon, len(poly))
	}
	if len(poly) < 6 {
		return RLE{}, fmt.Errorf("coco: %w: %d points, fewer than 3", ErrBadPolygon, len(poly)/2)
	}
	if err := checkCoords(poly); err != nil {
		return RLE{}, err
	}
	if h < 0 || w < 0 {
		return RLE{}, fmt.Errorf("coco: mask size %dx%d is negative", h, w)
	}
	return frPoly(poly, h, w), nil
}

// maxCoord bounds polygon coordinates: rleFrPoly traces the boundary point by point at 5
// points a pixel, so a huge coordinate would allocate without bound.
const maxCoord = 1e6

func checkCoords(poly []float64) error {
	for i, v := range poly {
		if math.IsNaN(v) || math.IsInf(v, 0) || math.Abs(v) > maxCoord {
			return fmt.Errorf("coco: %w: coordinate %d is %v (finite and at most %g in magnitude)", ErrBadPolygon, i, v, maxCoord)
		}
	}
	return nil
}

// frPoly is maskApi's rleFrPoly; the coordinates are finite and not huge.
func frPoly(xy []float64, h, w int) RLE {
	const scale = 5.0
	k := len(xy) / 2
	x := make([]int, k+1)
	y := make([]int, k+1)
	for j := 0; j < k; j++ {
		x[j] = int(scale*xy[2*j] + .5) // C's (int) truncates toward zero, as Go's conversion
		y[j] = int(scale*xy[2*j+1] + .5)
	}
	x[k], y[k] = x[0], y[0]
	m := 0
	for j := 0; j < k; j++ {
		m += max(absInt(x[j]-x[j+1]), absInt(y[j]-y[j+1])) + 1
	}
	u := make([]int, 0, m)
	v := make([]int, 0, m)
	for j := 0; j < k; j++ {
		xs, xe, ys, ye := x[j], x[j+1], y[j], y[j+1]
		dx, dy := absInt(xe-xs), absInt(ys-ye)
		flip := (dx >= dy && xs > xe) || (dx < dy && ys > ye)
		if flip {
			xs, xe = xe, xs
			ys, ye = ye, ys
		}
		var s float64
		if dx >= dy {
			if dx > 0 { // maskApi divides 0 by 0 here; the point's v is never used
				s = float64(ye-ys) / float64(dx)
			}
			for d := 0; d <= dx; d++ {
				t := d
				if flip {
					t = dx - d
				}
				u = append(u, t+xs)
				v = append(v, int(float64(ys)+s*float64(t)+.5))
			}
		} else {
			s = float64(xe-xs) / float64(dy)
			for d := 0; d <= dy; d++ {
				t := d
				if flip {
					t = dy - d
				}
				v = append(v, t+ys)
				u = append(u, int(float64(xs)+s*float64(t)+.5))
			}
		}
	}
	// Points on the y-boundary, downsampled.
	a := make([]uint32, 0, len(u)+1)
	for j := 1; j < len(u); j++ {
		if u[j] == u[j-1] {
			continue
		}
		xd := float64(u[j] - 1)
		if u[j] < u[j-1] {
			xd = float64(u[j])
		}
		xd = (xd+.5)/scale - .5
		if math.Floor(xd) != xd || xd < 0 || xd > float64(w-1) {
			continue
		}
		yd := float64(min(v[j], v[j-1]))
		yd = (yd+.5)/scale - .5
		if yd < 0 {
			yd = 0
		} else if yd > float64(h) {
			yd = float64(h)
		}
		yd = math.Ceil(yd)
		a = append(a, uint32(int(xd)*h+int(yd)))
	}
	a = append(a, uint32(h*w))
	slices.Sort(a)
	var p uint32
	for j, t := range a {
		a[j] -= p
		p = t
	}
	b := make([]uint32, 0, len(a))
	b = append(b, a[0])
	for j := 1; j < len(a); {
		if a[j] > 0 {
			b = append(b, a[j])
			j++
		} else {
			j++
			if j < len(a) {
				b[len(b)-1] += a[j]
				j++
			}
		}
	}
	return RLE{H: h, W: w, Counts: b}
}

func absInt(a int) int {
	if a < 0 {
		return -a
	}
	return a
}

// FromBBox rasterises the box [x, y, w, h] in an h x w mask as maskApi's rleFrBbox: the box's
// four corners as a polygon.
func FromBBox(b [4]float64, h, w int) RLE {
	xs, ys := b[0], b[1]
	xe, ye := xs+b[2], ys+b[3]
	return frPoly([]float64{xs, ys, xs, ye, xe, ye, xe, ys}, h, w)
}

// Merge returns the union of rles, or their intersection if intersect (maskApi's rleMerge).
// As in maskApi, no masks give the empty 0 x 0 RLE, and masks of different sizes give it
// too.
func Merge(rles []RLE, intersect bool) RLE {
	if len(rles) == 0 {
		return RLE{}
	}
	h, w := rles[0].H, rles[0].W
	cnts := slices.Clone(rles[0].Counts)
	if len(rles) == 1 {
		return RLE{H: h, W: w, Counts: cnts}
	}
	for _, bR := range rles[1:] {
		if bR.H != h || bR.W != w {
			return RLE{}
		}
		aC, bC := cnts, bR.Counts
		if len(aC) == 0 || len(bC) == 0 {
			return RLE{}
		}
		ca, cb := aC[0], bC[0]
		var va, vb, v bool
		ai, bi := 1, 1
		var cc uint32
		out := make([]uint32, 0, len(aC)+len(bC))
		for ct := uint32(1); ct > 0; {
			c := min(ca, cb)
			cc += c
			ct = 0
			ca -= c
			if ca == 0 && ai < len(aC) {
				ca = aC[ai]
				ai++
				va = !va
			}
			ct += ca
			cb -= c
			if cb == 0 && bi < len(bC) {
				cb = bC[bi]
				bi++
				vb = !vb
			}
			ct += cb
			vp := v
			if intersect {
				v = va && vb
			} else {
				v = va || vb
			}
			if v != vp || ct == 0 {
				out = append(out, cc)
				cc = 0
			}
		}
		cnts = out
	}
	return RLE{H: h, W: w, Counts: cnts}
}

// IoU returns the [len(dt)][len(gt)] overlaps of the masks (maskApi's rleIou): the
// intersection over the union, or over the detection's area where isCrowd[g] (the GT is a
// crowd region). As in maskApi, pairs whose bounding boxes do not overlap are 0 without
// looking at the masks, and -1 marks a pair of different sizes whose boxes overlap. isCrowd
// may be nil (no crowds); otherwise it must have len(gt) entries. No dt or no gt give nil.
func IoU(dt, gt []RLE, isCrowd []bool) [][]float64 {
	if len(dt) == 0 || len(gt) == 0 {
		return nil
	}
	db := make([][4]float64, len(dt))
	for i, r := range dt {
		db[i] = r.ToBBox()
	}
	gb := make([][4]float64, len(gt))
	for i, r := range gt {
		gb[i] = r.ToBBox()
	}
	o := BBoxIoU(db, gb, isCrowd)
	for g := range gt {
		crowd := isCrowd != nil && isCrowd[g]
		for d := range dt {
			if o[d][g] <= 0 {
				continue
			}
			if dt[d].H != gt[g].H || dt[d].W != gt[g].W {
				o[d][g] = -1
				continue
			}
			o[d][g] = rleIoU(dt[d], gt[g], crowd)
		}
	}
	return o
}

func rleIoU(dR, gR RLE, crowd bool) float64 {
	dC, gC := dR.Counts, gR.Counts
	if len(dC) == 0 || len(gC) == 0 {
		return 0
	}
	ca, cb := dC[0], gC[0]
	var va, vb bool
	a, b := 1, 1
	var i, u uint64
	for ct := uint32(1); ct > 0; {
		c := min(ca, cb)
		if va || vb {
			u += uint64(c)
			if va && vb {
				i += uint64(c)
			}
		}
		ct = 0
		ca -= c
		if ca == 0 && a < len(dC) {
			ca = dC[a]
			a++
			va = !va
		}
		ct += ca
		cb -= c
		if cb == 0 && b < len(gC) {
			cb = gC[b]
			b++
			vb = !vb
		}
		ct += cb
	}
	if i == 0 {
		u = 1
	} else if crowd {
		u = dR.Area()
	}
	return float64(i) / float64(u)
}

// BBoxIoU returns the [len(dt)][len(gt)] overlaps of boxes [x, y, w, h] (maskApi's bbIou): the
// intersection over the union, or over the detection's area where isCrowd[g]. Boxes that
// only touch have 0. isCrowd may be nil; otherwise it must have len(gt) entries. No dt or no
// gt give nil.
func BBoxIoU(dt, gt [][4]float64, isCrowd []bool) [][]float64 {
	if len(dt) == 0 || len(gt) == 0 {
		return nil
	}
	if isCrowd != nil && len(isCrowd) != len(gt) {
		panic(fmt.Sprintf("coco: %d crowd flags for %d GT", len(isCrowd), len(gt)))
	}
	o := make([][]float64, len(dt))
	flat := make([]float64, len(dt)*len(gt))
	for d := range dt {
		o[d] = flat[d*len(gt) : (d+1)*len(gt)]
	}
	for g, G := range gt {
		ga := G[2] * G[3]
		crowd := isCrowd != nil && isCrowd[g]
		for d, D := range dt {
			da := D[2] * D[3]
			w := math.Min(D[2]+D[0], G[2]+G[0]) - math.Max(D[0], G[0])
			if w <= 0 {
				continue
			}
			h := math.Min(D[3]+D[1], G[3]+G[1]) - math.Max(D[1], G[1])
			if h <= 0 {
				continue
			}
			i := w * h
			u := da + ga - i
			if crowd {
				u = da
			}
			o[d][g] = i / u
		}
	}
	return o
}

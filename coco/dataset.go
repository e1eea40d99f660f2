// Package coco reads and writes COCO instance annotations and evaluates detections on them as
// pycocotools does: the run-length masks of maskApi.c (Encode, FromPolygon, Merge, IoU, ...),
// the annotation files of coco.py (Load, Write, Segmentation.ToRLE) and the COCOeval of
// cocoeval.py (Evaluate, Summary).
package coco

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/goselfsup/goselfsup/internal/atomicfile"
)

// Dataset is an instances_*.json file. Info and Licenses are kept as they are.
type Dataset struct {
	Info        json.RawMessage `json:"info,omitempty"`
	Licenses    json.RawMessage `json:"licenses,omitempty"`
	Images      []Image         `json:"images"`
	Annotations []Annotation    `json:"annotations"`
	Categories  []Category      `json:"categories"`
}

// Image is an entry of a dataset's images.
type Image struct {
	ID       int64  `json:"id"`
	FileName string `json:"file_name"`
	Width    int    `json:"width"`
	Height   int    `json:"height"`
}

// Category is an entry of a dataset's categories.
type Category struct {
	ID            int64  `json:"id"`
	Name          string `json:"name"`
	Supercategory string `json:"supercategory"`
}

// Annotation is one object instance.
type Annotation struct {
	ID         int64      `json:"id"`
	ImageID    int64      `json:"image_id"`
	CategoryID int64      `json:"category_id"`
	BBox       [4]float64 `json:"bbox"` // x, y, w, h
	Area       float64    `json:"area"`
	IsCrowd    int        `json:"iscrowd"`
	// Segmentation is a list of polygons, or an RLE (usually for crowds), in JSON an
	// uncompressed {"counts": [...], "size": [h, w]} or a compressed {"counts": "...", "size":
	// [h, w]}.
	Segmentation Segmentation `json:"segmentation"`
}

// Segmentation is an annotation's mask: polygons or an RLE. At most one of them is set; both
// are empty when the annotation has none.
type Segmentation struct {
	Polygons [][]float64
	RLE      *RLE
}

// ErrNoSegmentation is wrapped by Segmentation.ToRLE's error for an empty segmentation.
var ErrNoSegmentation = errors.New("no segmentation")

// ToRLE returns the h x w mask of the segmentation as pycocotools' COCO.annToRLE: the
// polygons rasterised with FromPolygon and merged with OR, or the RLE itself. It is an error
// if a polygon is bad (see FromPolygon), if the RLE's size is not h x w or its counts do not
// sum to h*w, or if the segmentation is empty (wrapping ErrNoSegmentation).
func (s Segmentation) ToRLE(h, w int) (RLE, error) {
	if s.RLE != nil {
		if s.RLE.H != h || s.RLE.W != w {
			return RLE{}, fmt.Errorf("coco: RLE of size %dx%d in an image of %dx%d", s.RLE.H, s.RLE.W, h, w)
		}
		if err := s.RLE.Validate(); err != nil {
			return RLE{}, err
		}
		return *s.RLE, nil
	}
	if len(s.Polygons) == 0 {
		return RLE{}, fmt.Errorf("coco: %w", ErrNoSegmentation)
	}
	rles := make([]RLE, len(s.Polygons))
	for i, p := range s.Polygons {
		r, err := FromPolygon(p, h, w)
		if err != nil {
			return RLE{}, fmt.Errorf("polygon %d: %w", i, err)
		}
		rles[i] = r
	}
	return Merge(rles, false), nil
}

// ToRLELenient is ToRLE as pycocotools' annToRLE takes whatever it is given, the way COCOeval
// and mmdet's poly2mask reach it: a first polygon of four numbers makes every polygon a box
// (FromBBox; an error if another has a different length), other polygons are rasterised on
// their len/2 points (an odd last number dropped, fewer than 3 points giving what rleFrPoly
// gives), and an RLE is used at its own size. Still errors: a polygon of fewer than two
// numbers, a non-finite or huge coordinate, RLE counts that do not sum to its size, and an
// empty segmentation (wrapping ErrNoSegmentation).
func (s Segmentation) ToRLELenient(h, w int) (RLE, error) {
	if s.RLE != nil {
		if err := s.RLE.Validate(); err != nil {
			return RLE{}, err
		}
		return *s.RLE, nil
	}
	if len(s.Polygons) == 0 {
		return RLE{}, fmt.Errorf("coco: %w", ErrNoSegmentation)
	}
	if h < 0 || w < 0 {
		return RLE{}, fmt.Errorf("coco: mask size %dx%d is negative", h, w)
	}
	rles := make([]RLE, len(s.Polygons))
	boxes := len(s.Polygons[0]) == 4
	for i, poly := range s.Polygons {
		if boxes && len(poly) != 4 {
			return RLE{}, fmt.Errorf("coco: %w: polygon %d has %d numbers, after a first one of 4 (read as a box)", ErrBadPolygon, i, len(poly))
		}
		if len(poly) < 2 {
			return RLE{}, fmt.Errorf("coco: %w: polygon %d has %d numbers", ErrBadPolygon, i, len(poly))
		}
		if err := checkCoords(poly); err != nil {
			return RLE{}, fmt.Errorf("polygon %d: %w", i, err)
		}
		if boxes {
			rles[i] = FromBBox([4]float64(poly), h, w)
		} else {
			rles[i] = frPoly(poly[:len(poly)/2*2], h, w)
		}
	}
	return Merge(rles, false), nil
}

// ImageAnnotations returns each image's annotations, by image id, in file order
// (pycocotools' imgToAnns); the pointers are into d.Annotations.
func (d *Dataset) ImageAnnotations() map[int64][]*Annotation {
	m := make(map[int64][]*Annotation, len(d.Images))
	for i := range d.Annotations {
		a := &d.Annotations[i]
		m[a.ImageID] = append(m[a.ImageID], a)
	}
	return m
}

type jsonRLE struct {
	Counts json.RawMessage `json:"counts"`
	Size   []int           `json:"size"`
}

// UnmarshalJSON reads a list of polygons, or an uncompressed or compressed RLE. The RLE's
// counts must sum to the product of its size.
func (s *Segmentation) UnmarshalJSON(data []byte) error {
	*s = Segmentation{}
	data = bytes.TrimSpace(data)
	if len(data) == 0 || bytes.Equal(data, []byte("null")) {
		return nil
	}
	if data[0] == '[' {
		if err := json.Unmarshal(data, &s.Polygons); err != nil {
			return fmt.Errorf("segmentation polygons: %w", err)
		}
		return nil
	}
	var j jsonRLE
	if err := json.Unmarshal(data, &j); err != nil {
		return fmt.Errorf("segmentation RLE: %w", err)
	}
	if len(j.Size) != 2 || j.Size[0] < 0 || j.Size[1] < 0 {
		return fmt.Errorf("segmentation RLE: size %v is not [h, w]", j.Size)
	}
	h, w := j.Size[0], j.Size[1]
	c := bytes.TrimSpace(j.Counts)
	if len(c) > 0 && c[0] == '"' {
		var str string
		if err := json.Unmarshal(c, &str); err != nil {
			return fmt.Errorf("segmentation RLE counts: %w", err)
		}
		r, err := RLEFromString(str, h, w)
		if err != nil {
			return fmt.Errorf("segmentation: %w", err)
		}
		s.RLE = &r
		return nil
	}
	r := RLE{H: h, W: w}
	if err := json.Unmarshal(c, &r.Counts); err != nil {
		return fmt.Errorf("segmentation RLE counts: %w", err)
	}
	if err := r.Validate(); err != nil {
		return fmt.Errorf("segmentation: %w", err)
	}
	s.RLE = &r
	return nil
}

// MarshalJSON writes the polygons as a list, an RLE in compressed form ({"size": [h, w],
// "counts": "..."}) and an empty segmentation as [].
func (s Segmentation) MarshalJSON() ([]byte, error) {
	if s.RLE != nil {
		return s.RLE.MarshalJSON()
	}
	if s.Polygons == nil {
		return []byte("[]"), nil
	}
	return json.Marshal(s.Polygons)
}

// MarshalJSON writes the RLE in pycocotools' compressed form {"size": [h, w], "counts": "..."}.
func (r RLE) MarshalJSON() ([]byte, error) {
	return json.Marshal(struct {
		Size   [2]int `json:"size"`
		Counts string `json:"counts"`
	}{[2]int{r.H, r.W}, r.String()})
}

// UnmarshalJSON reads an uncompressed or compressed RLE.
func (r *RLE) UnmarshalJSON(data []byte) error {
	var s Segmentation
	if err := s.UnmarshalJSON(data); err != nil {
		return err
	}
	if s.RLE == nil {
		return errors.New("coco: not an RLE")
	}
	*r = *s.RLE
	return nil
}

// UnmarshalJSON reads an annotation, naming its id in errors.
func (a *Annotation) UnmarshalJSON(data []byte) error {
	type plain Annotation
	var p struct {
		plain
		Segmentation json.RawMessage `json:"segmentation"`
	}
	if err := json.Unmarshal(data, &p); err != nil {
		// %v: the offsets of json's errors here are relative to the annotation, and Load
		// would report them as the file's.
		return fmt.Errorf("annotation %s: %v", annID(data), err)
	}
	*a = Annotation(p.plain)
	if err := a.Segmentation.UnmarshalJSON(p.Segmentation); err != nil {
		return fmt.Errorf("annotation %d: %v", a.ID, err)
	}
	return nil
}

// annID is the id of a malformed annotation, if it can be read.
func annID(data []byte) string {
	var id struct {
		ID json.RawMessage `json:"id"`
	}
	if json.Unmarshal(data, &id) == nil && id.ID != nil {
		return string(id.ID)
	}
	return "(id unknown)"
}

// Load reads an instances_*.json file. Errors name the file, and the annotation id or the
// JSON offset of the problem.
func Load(path string) (*Dataset, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("coco: %w", err)
	}
	d := new(Dataset)
	if err := json.Unmarshal(data, d); err != nil {
		var se *json.SyntaxError
		var te *json.UnmarshalTypeError
		switch {
		case errors.As(err, &se):
			return nil, fmt.Errorf("coco: %s at byte %d: %w", path, se.Offset, err)
		case errors.As(err, &te):
			return nil, fmt.Errorf("coco: %s at byte %d: %w", path, te.Offset, err)
		}
		return nil, fmt.Errorf("coco: %s: %w", path, err)
	}
	return d, nil
}

// Write writes d as JSON to path, creating its folder if needed, through a temporary file
// renamed into place.
func (d *Dataset) Write(path string) error {
	data, err := json.Marshal(d)
	if err != nil {
		return fmt.Errorf("coco: %s: %w", path, err)
	}
	return writeFile(path, data)
}

func writeFile(path string, data []byte) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return fmt.Errorf("coco: %w", err)
	}
	err := atomicfile.Write(path, func(w io.Writer) error {
		_, err := w.Write(data)
		return err
	})
	if err != nil {
		return fmt.Errorf("coco: writing %s: %w", path, err)
	}
	return nil
}

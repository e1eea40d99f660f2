// Package cocofixture builds COCO instance annotations (coco.Dataset) for tests and smoke runs
// from the test data's COCO128 panoptic segmentation.
package cocofixture

import (
	"encoding/json"
	"fmt"
	"image"
	"image/png"
	"os"
	"path/filepath"

	"github.com/goselfsup/goselfsup/coco"

	"github.com/goselfsup/goselfsup/internal/shareddata"
)

type panopticSegment struct {
	ID         int64      `json:"id"`
	CategoryID int64      `json:"category_id"`
	IsCrowd    int        `json:"iscrowd"`
	BBox       [4]float64 `json:"bbox"`
	Area       float64    `json:"area"`
}

type panopticFile struct {
	Info        json.RawMessage `json:"info"`
	Licenses    json.RawMessage `json:"licenses"`
	Images      []coco.Image    `json:"images"`
	Annotations []struct {
		ImageID  int64             `json:"image_id"`
		FileName string            `json:"file_name"`
		Segments []panopticSegment `json:"segments_info"`
	} `json:"annotations"`
	Categories []struct {
		ID            int64  `json:"id"`
		Name          string `json:"name"`
		Supercategory string `json:"supercategory"`
		IsThing       int    `json:"isthing"`
	} `json:"categories"`
}

// Mismatch records a segment whose box or area in segments_info differs from its mask's.
type Mismatch struct {
	ImageID, SegmentID int64
	InfoBBox, MaskBBox [4]float64
	InfoArea, MaskArea float64
}

// FromCOCO128 converts <root>/panoptic_segmentation/annotations/panoptic_<split>.json and
// its PNGs (segment id = R + 256*G + 65536*B) into COCO instances: the images of the
// panoptic file (those without objects too), the 80 thing categories with their COCO ids and
// names, and one annotation per thing segment, numbered from 1 in image and segment order,
// with the segment's pixels as a compressed RLE, its box and area from that mask and its
// iscrowd. root is the unpacked coco128-lightly; split is train2017 or val2017.
func FromCOCO128(root, split string) (*coco.Dataset, error) {
	d, _, err := FromCOCO128Checked(root, split)
	return d, err
}

// FromCOCO128Checked is FromCOCO128 that also returns the segments whose bbox or area in
// segments_info differ from the mask's (the dataset uses the mask's).
func FromCOCO128Checked(root, split string) (*coco.Dataset, []Mismatch, error) {
	dir := filepath.Join(root, "panoptic_segmentation", "annotations")
	jsonPath := filepath.Join(dir, "panoptic_"+split+".json")
	data, err := os.ReadFile(jsonPath)
	if err != nil {
		return nil, nil, fmt.Errorf("cocofixture: %w", err)
	}
	var pf panopticFile
	if err := json.Unmarshal(data, &pf); err != nil {
		return nil, nil, fmt.Errorf("cocofixture: %s: %w", jsonPath, err)
	}
	out := &coco.Dataset{Info: pf.Info, Licenses: pf.Licenses, Images: pf.Images,
		Annotations: []coco.Annotation{}}
	thing := map[int64]bool{}
	for _, c := range pf.Categories {
		if c.IsThing == 1 {
			thing[c.ID] = true
			out.Categories = append(out.Categories, coco.Category{ID: c.ID, Name: c.Name, Supercategory: c.Supercategory})
		}
	}
	images := map[int64]coco.Image{}
	for _, im := range pf.Images {
		images[im.ID] = im
	}
	var mismatches []Mismatch
	for _, a := range pf.Annotations {
		im, ok := images[a.ImageID]
		if !ok {
			return nil, nil, fmt.Errorf("cocofixture: %s: annotation of image %d, which is not in images", jsonPath, a.ImageID)
		}
		var things []panopticSegment
		for _, s := range a.Segments {
			if thing[s.CategoryID] {
				things = append(things, s)
			}
		}
		if len(things) == 0 {
			continue
		}
		pngPath := filepath.Join(dir, "panoptic_"+split, a.FileName)
		ids, err := readIDs(pngPath, im.Height, im.Width)
		if err != nil {
			return nil, nil, err
		}
		mask := make([]uint8, len(ids))
		for _, s := range things {
			for i, id := range ids {
				mask[i] = 0
				if id == s.ID {
					mask[i] = 1
				}
			}
			r := coco.Encode(mask, im.Height, im.Width)
			bbox, area := r.ToBBox(), float64(r.Area())
			if bbox != s.BBox || area != s.Area {
				mismatches = append(mismatches, Mismatch{a.ImageID, s.ID, s.BBox, bbox, s.Area, area})
			}
			out.Annotations = append(out.Annotations, coco.Annotation{
				ID: int64(len(out.Annotations) + 1), ImageID: a.ImageID, CategoryID: s.CategoryID,
				BBox: bbox, Area: area, IsCrowd: s.IsCrowd, Segmentation: coco.Segmentation{RLE: &r},
			})
		}
	}
	return out, mismatches, nil
}

// readIDs reads a panoptic PNG as row-major segment ids.
func readIDs(path string, h, w int) ([]int64, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("cocofixture: %w", err)
	}
	defer f.Close()
	img, err := png.Decode(f)
	if err != nil {
		return nil, fmt.Errorf("cocofixture: %s: %w", path, err)
	}
	b := img.Bounds()
	if b.Dx() != w || b.Dy() != h {
		return nil, fmt.Errorf("cocofixture: %s is %dx%d, the image %dx%d", path, b.Dx(), b.Dy(), w, h)
	}
	ids := make([]int64, h*w)
	if rgba, ok := img.(*image.RGBA); ok {
		for y := 0; y < h; y++ {
			row := rgba.Pix[y*rgba.Stride:]
			for x := 0; x < w; x++ {
				p := row[4*x:]
				ids[y*w+x] = int64(p[0]) + 256*int64(p[1]) + 65536*int64(p[2])
			}
		}
		return ids, nil
	}
	for y := 0; y < h; y++ {
		for x := 0; x < w; x++ {
			r, g, bl, _ := img.At(b.Min.X+x, b.Min.Y+y).RGBA()
			ids[y*w+x] = int64(r>>8) + 256*int64(g>>8) + 65536*int64(bl>>8)
		}
	}
	return ids, nil
}

// Splits are COCO128's splits, in mmdet's folder names.
var Splits = []string{"train2017", "val2017"}

// WriteCOCO128 writes COCO128 under dst in mmdet's COCO layout:
// annotations/instances_<split>.json (FromCOCO128) and <split>/<file_name> (links to
// <root>/images/<split>/<file_name>, or copies where links fail) for the images of each of
// Splits. It returns the datasets by split.
func WriteCOCO128(root, dst string) (map[string]*coco.Dataset, error) {
	out := map[string]*coco.Dataset{}
	for _, split := range Splits {
		d, err := FromCOCO128(root, split)
		if err != nil {
			return nil, err
		}
		if err := os.MkdirAll(filepath.Join(dst, split), 0o755); err != nil {
			return nil, fmt.Errorf("cocofixture: %w", err)
		}
		for _, im := range d.Images {
			src := filepath.Join(root, "images", split, im.FileName)
			if err := shareddata.LinkOrCopy(src, filepath.Join(dst, split, im.FileName)); err != nil {
				return nil, fmt.Errorf("cocofixture: image %d: %w", im.ID, err)
			}
		}
		if err := d.Write(filepath.Join(dst, "annotations", "instances_"+split+".json")); err != nil {
			return nil, err
		}
		out[split] = d
	}
	return out, nil
}

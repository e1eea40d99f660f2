// Package vocfixture writes detection datasets in the PASCAL VOC layout for tests and smoke
// runs: VOC XML annotations (WriteXML), and COCO128's boxes as a VOC year folder
// (FromCOCO128) that VOCDataset reads.
package vocfixture

import (
	"bufio"
	"encoding/xml"
	"errors"
	"fmt"
	"image"
	_ "image/jpeg" // the images' sizes
	"math"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"

	"github.com/goselfsup/goselfsup/internal/shareddata"
)

// Object is one object of a VOC annotation: its class name and its box in VOC's 1-based
// inclusive pixel coordinates (a box covering pixels 0 to 9 of a 0-based image is xmin 1,
// xmax 10).
type Object struct {
	Name                   string
	Difficult              bool
	XMin, YMin, XMax, YMax int
}

// Annotation is one image's VOC annotation.
type Annotation struct {
	Filename      string
	Width, Height int
	Objects       []Object
}

type xmlBox struct {
	XMin int `xml:"xmin"`
	YMin int `xml:"ymin"`
	XMax int `xml:"xmax"`
	YMax int `xml:"ymax"`
}

type xmlObject struct {
	Name      string `xml:"name"`
	Pose      string `xml:"pose"`
	Truncated int    `xml:"truncated"`
	Difficult int    `xml:"difficult"`
	BndBox    xmlBox `xml:"bndbox"`
}

type xmlAnnotation struct {
	XMLName  xml.Name `xml:"annotation"`
	Folder   string   `xml:"folder"`
	Filename string   `xml:"filename"`
	Size     struct {
		Width  int `xml:"width"`
		Height int `xml:"height"`
		Depth  int `xml:"depth"`
	} `xml:"size"`
	Segmented int         `xml:"segmented"`
	Objects   []xmlObject `xml:"object"`
}

// WriteXML writes a in VOC's XML format.
func WriteXML(path string, a Annotation) error {
	x := xmlAnnotation{Folder: "VOC", Filename: a.Filename}
	x.Size.Width, x.Size.Height, x.Size.Depth = a.Width, a.Height, 3
	for _, o := range a.Objects {
		d := 0
		if o.Difficult {
			d = 1
		}
		x.Objects = append(x.Objects, xmlObject{Name: o.Name, Pose: "Unspecified", Difficult: d,
			BndBox: xmlBox{o.XMin, o.YMin, o.XMax, o.YMax}})
	}
	data, err := xml.MarshalIndent(x, "", "\t")
	if err != nil {
		return err
	}
	return os.WriteFile(path, append(data, '\n'), 0o644)
}

// COCO128 is what FromCOCO128 wrote: the class names in label order, and each image's
// annotation by id, in the ids' order per split.
type COCO128 struct {
	Classes     []string
	Annotations map[string]Annotation
	Splits      map[string][]string // "train", "val": the ids
}

var nameLine = regexp.MustCompile(`^\s+(\d+):\s*(.+?)\s*$`)

// cocoNames reads the class names of COCO128's object_detection/config.yaml.
func cocoNames(path string) ([]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var names []string
	in := false
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "names:") {
			in = true
			continue
		}
		if !in {
			continue
		}
		m := nameLine.FindStringSubmatch(line)
		if m == nil {
			break
		}
		if i, _ := strconv.Atoi(m[1]); i != len(names) {
			return nil, fmt.Errorf("%s: class %s out of order", path, m[1])
		}
		names = append(names, m[2])
	}
	if len(names) == 0 {
		return nil, fmt.Errorf("%s: no class names", path)
	}
	return names, sc.Err()
}

// FromCOCO128 writes COCO128's object detection boxes (YOLO format: "class cx cy w h",
// normalised) under dst as one VOC year folder: JPEGImages/<id>.jpg (links to COCO128's
// images, or copies where links fail), Annotations/<id>.xml and ImageSets/Main/train.txt
// (train2017) and val.txt (val2017). A box becomes VOC's 1-based inclusive coordinates:
// xmin = round(x1) + 1, xmax = round(x2), clipped to the image, so that mmdet's -1 gives
// back round(x1) and round(x2) - 1. classes, if not empty, keeps the objects of those
// COCO names only (in that label order); images without objects keep their (empty)
// annotation. coco is the folder of the unpacked coco128-lightly archive.
func FromCOCO128(coco, dst string, classes []string) (*COCO128, error) {
	names, err := cocoNames(filepath.Join(coco, "object_detection", "config.yaml"))
	if err != nil {
		return nil, err
	}
	keep := names
	if len(classes) > 0 {
		for _, c := range classes {
			if !slices.Contains(names, c) {
				return nil, fmt.Errorf("%q is not a COCO class", c)
			}
		}
		keep = classes
	}
	for _, d := range []string{"JPEGImages", "Annotations", filepath.Join("ImageSets", "Main")} {
		if err := os.MkdirAll(filepath.Join(dst, d), 0o755); err != nil {
			return nil, err
		}
	}
	out := &COCO128{Classes: slices.Clone(keep), Annotations: map[string]Annotation{}, Splits: map[string][]string{}}
	for split, folder := range map[string]string{"train": "train2017", "val": "val2017"} {
		imgs, err := filepath.Glob(filepath.Join(coco, "images", folder, "*.jpg"))
		if err != nil {
			return nil, err
		}
		if len(imgs) == 0 {
			return nil, fmt.Errorf("no images in %s", filepath.Join(coco, "images", folder))
		}
		sort.Strings(imgs)
		var ids []string
		for _, img := range imgs {
			id := strings.TrimSuffix(filepath.Base(img), ".jpg")
			a, err := cocoImage(img, filepath.Join(coco, "object_detection", "labels", folder, id+".txt"), names, keep)
			if err != nil {
				return nil, err
			}
			if err := shareddata.LinkOrCopy(img, filepath.Join(dst, "JPEGImages", id+".jpg")); err != nil {
				return nil, err
			}
			if err := WriteXML(filepath.Join(dst, "Annotations", id+".xml"), a); err != nil {
				return nil, err
			}
			out.Annotations[id] = a
			ids = append(ids, id)
		}
		out.Splits[split] = ids
		list := strings.Join(ids, "\n") + "\n"
		if err := os.WriteFile(filepath.Join(dst, "ImageSets", "Main", split+".txt"), []byte(list), 0o644); err != nil {
			return nil, err
		}
	}
	return out, nil
}

func cocoImage(img, labels string, names, keep []string) (Annotation, error) {
	f, err := os.Open(img)
	if err != nil {
		return Annotation{}, err
	}
	cfg, _, err := image.DecodeConfig(f)
	f.Close()
	if err != nil {
		return Annotation{}, fmt.Errorf("%s: %w", img, err)
	}
	a := Annotation{Filename: filepath.Base(img), Width: cfg.Width, Height: cfg.Height}
	data, err := os.ReadFile(labels)
	if errors.Is(err, os.ErrNotExist) {
		return a, nil // no objects
	}
	if err != nil {
		return Annotation{}, err
	}
	for n, line := range strings.Split(string(data), "\n") {
		fields := strings.Fields(line)
		if len(fields) == 0 {
			continue
		}
		if len(fields) != 5 {
			return Annotation{}, fmt.Errorf("%s:%d: %d fields, want 5 (class cx cy w h)", labels, n+1, len(fields))
		}
		var v [5]float64
		for i, s := range fields {
			if v[i], err = strconv.ParseFloat(s, 64); err != nil {
				return Annotation{}, fmt.Errorf("%s:%d: %w", labels, n+1, err)
			}
		}
		c := int(v[0])
		if c < 0 || c >= len(names) {
			return Annotation{}, fmt.Errorf("%s:%d: class %d of %d", labels, n+1, c, len(names))
		}
		if !slices.Contains(keep, names[c]) {
			continue
		}
		W, H := float64(cfg.Width), float64(cfg.Height)
		x1, x2 := (v[1]-v[3]/2)*W, (v[1]+v[3]/2)*W
		y1, y2 := (v[2]-v[4]/2)*H, (v[2]+v[4]/2)*H
		o := Object{Name: names[c],
			XMin: clampInt(int(math.Round(x1))+1, 1, cfg.Width), XMax: clampInt(int(math.Round(x2)), 1, cfg.Width),
			YMin: clampInt(int(math.Round(y1))+1, 1, cfg.Height), YMax: clampInt(int(math.Round(y2)), 1, cfg.Height)}
		o.XMax, o.YMax = max(o.XMax, o.XMin), max(o.YMax, o.YMin)
		a.Objects = append(a.Objects, o)
	}
	return a, nil
}

func clampInt(v, lo, hi int) int { return min(max(v, lo), hi) }

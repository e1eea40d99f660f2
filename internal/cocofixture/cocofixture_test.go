package cocofixture

import (
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/goselfsup/goselfsup/coco"
	"github.com/goselfsup/goselfsup/internal/shareddata"
)

func TestFromCOCO128(t *testing.T) {
	root, err := shareddata.Dir("coco128-lightly")
	if errors.Is(err, shareddata.ErrAbsent) {
		t.Skip(err)
	}
	if err != nil {
		t.Fatal(err)
	}
	for _, split := range []string{"train2017", "val2017"} {
		d, mism, err := FromCOCO128Checked(root, split)
		if err != nil {
			t.Fatal(err)
		}
		if len(d.Categories) != 80 || d.Categories[0].ID != 1 || d.Categories[0].Name != "person" || d.Categories[79].ID != 90 {
			t.Errorf("%s: %d categories, first %+v last %+v", split, len(d.Categories), d.Categories[0], d.Categories[len(d.Categories)-1])
		}
		crowd := 0
		for _, a := range d.Annotations {
			crowd += a.IsCrowd
			if a.Area <= 0 || a.Segmentation.RLE == nil || uint64(a.Area) != a.Segmentation.RLE.Area() {
				t.Errorf("%s: annotation %d: area %v", split, a.ID, a.Area)
			}
		}
		t.Logf("%s: %d images, %d annotations (%d crowd), %d segments whose info differs from the mask", split, len(d.Images), len(d.Annotations), crowd, len(mism))
		for _, m := range mism {
			t.Errorf("%s: %+v", split, m)
		}
		if len(d.Images) != 100 || len(d.Annotations) < 500 {
			t.Errorf("%s: %d images, %d annotations", split, len(d.Images), len(d.Annotations))
		}
	}
}

func TestWriteCOCO128(t *testing.T) {
	root, err := shareddata.Dir("coco128-lightly")
	if errors.Is(err, shareddata.ErrAbsent) {
		t.Skip(err)
	}
	if err != nil {
		t.Fatal(err)
	}
	dst := t.TempDir()
	ds, err := WriteCOCO128(root, dst)
	if err != nil {
		t.Fatal(err)
	}
	for _, split := range Splits {
		d, err := coco.Load(filepath.Join(dst, "annotations", "instances_"+split+".json"))
		if err != nil {
			t.Fatal(err)
		}
		if len(d.Images) != len(ds[split].Images) || len(d.Annotations) != len(ds[split].Annotations) {
			t.Errorf("%s: read back %d images, %d annotations", split, len(d.Images), len(d.Annotations))
		}
		for i, a := range d.Annotations {
			w := ds[split].Annotations[i]
			if a.ID != w.ID || a.BBox != w.BBox || a.Segmentation.RLE.String() != w.Segmentation.RLE.String() {
				t.Errorf("%s: annotation %d read back differs", split, a.ID)
			}
		}
		im := d.Images[0]
		if st, err := os.Stat(filepath.Join(dst, split, im.FileName)); err != nil || st.Size() == 0 {
			t.Errorf("%s: image %s: %v", split, im.FileName, err)
		}
	}
}

// Command coco128_instances writes the test data's COCO128 as a COCO instances folder in
// mmdet's layout, for the CPU-sized Mask R-CNN benchmark:
//
//	mkdir -p data/coco128 && tar -xzf ../shared/data/coco128-lightly.tar.gz -C data/coco128
//	go run ./tools/coco128_instances data/coco128 data/coco128_coco
//
// DST receives annotations/instances_{train2017,val2017}.json (one annotation per "thing"
// segment of COCO128's panoptic segmentation, its mask as a compressed RLE) and
// {train2017,val2017}/ with links to (or copies of) the images.
package main

import (
	"fmt"
	"os"

	"github.com/goselfsup/goselfsup/internal/cocofixture"
)

func main() {
	if len(os.Args) != 3 {
		fmt.Fprintln(os.Stderr, "usage: coco128_instances COCO128_DIR DST")
		os.Exit(2)
	}
	ds, err := cocofixture.WriteCOCO128(os.Args[1], os.Args[2])
	if err != nil {
		fmt.Fprintln(os.Stderr, "error:", err)
		os.Exit(1)
	}
	for _, split := range cocofixture.Splits {
		d := ds[split]
		crowd := 0
		for _, a := range d.Annotations {
			crowd += a.IsCrowd
		}
		fmt.Printf("%s: %s: %d images, %d annotations (%d crowd), %d categories\n", os.Args[2], split, len(d.Images), len(d.Annotations), crowd, len(d.Categories))
	}
}

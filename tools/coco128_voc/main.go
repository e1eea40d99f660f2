// Command coco128_voc writes the test data's COCO128 boxes as a PASCAL VOC folder that
// VOCDataset reads, for the CPU-sized detection benchmark
// (configs/benchmarks/detection/coco128/*):
//
//	mkdir -p data/coco128 && tar -xzf ../shared/data/coco128-lightly.tar.gz -C data/coco128
//	go run ./tools/coco128_voc data/coco128 data/coco128_voc/COCO128 --classes person,car
//
// DST receives JPEGImages (links to COCO128's photos), Annotations/<id>.xml and
// ImageSets/Main/{train,val}.txt (train2017 and val2017); --classes keeps the objects of those
// COCO classes only, in that label order.
package main

import (
	"flag"
	"fmt"
	"os"
	"strings"

	"github.com/goselfsup/goselfsup/internal/vocfixture"
)

func main() {
	fs := flag.NewFlagSet("coco128_voc", flag.ContinueOnError)
	classes := fs.String("classes", "", "keep the objects of these COCO `classes` only (comma-separated; default all 80)")
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), "usage: coco128_voc COCO128_DIR DST [--classes a,b,...]")
		fs.PrintDefaults()
	}
	args := os.Args[1:]
	var pos []string
	for len(args) > 0 {
		if err := fs.Parse(args); err != nil {
			os.Exit(2)
		}
		if fs.NArg() == 0 {
			break
		}
		pos = append(pos, fs.Arg(0))
		args = fs.Args()[1:]
	}
	if len(pos) != 2 {
		fs.Usage()
		os.Exit(2)
	}
	var keep []string
	for _, c := range strings.Split(*classes, ",") {
		if c = strings.TrimSpace(c); c != "" {
			keep = append(keep, c)
		}
	}
	out, err := vocfixture.FromCOCO128(pos[0], pos[1], keep)
	if err != nil {
		fmt.Fprintln(os.Stderr, "error:", err)
		os.Exit(1)
	}
	boxes := 0
	for _, a := range out.Annotations {
		boxes += len(a.Objects)
	}
	fmt.Printf("%s: %d train and %d val images, %d boxes of %d classes (%s)\n", pos[1], len(out.Splits["train"]), len(out.Splits["val"]),
		boxes, len(out.Classes), strings.Join(out.Classes, ", "))
}

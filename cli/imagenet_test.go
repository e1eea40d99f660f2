package cli

import (
	"context"
	"fmt"
	"image"
	"image/color"
	"image/jpeg"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/goselfsup/goselfsup/datasets"
	"github.com/goselfsup/goselfsup/registry"
)

// imageNetTree writes a small tree in mmselfsup's ImageNet layout: data_root/train/<wnid>/
// *.JPEG of various sizes and data_root/meta/train.txt listing them with their labels.
func imageNetTree(t *testing.T) (root string, n int) {
	t.Helper()
	root = t.TempDir()
	sizes := [][2]int{{300, 250}, {260, 400}, {500, 375}, {224, 224}, {640, 480}, {240, 320}}
	var list string
	for i, wh := range sizes {
		wnid := []string{"n01440764", "n01443537"}[i%2]
		rel := fmt.Sprintf("%s/%s_%d.JPEG", wnid, wnid, i)
		path := filepath.Join(root, "train", rel)
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		img := image.NewRGBA(image.Rect(0, 0, wh[0], wh[1]))
		for y := range wh[1] {
			for x := range wh[0] {
				img.Set(x, y, color.RGBA{uint8(x), uint8(y), uint8(40 * i), 255})
			}
		}
		f, err := os.Create(path)
		if err != nil {
			t.Fatal(err)
		}
		if err := jpeg.Encode(f, img, nil); err != nil {
			t.Fatal(err)
		}
		f.Close()
		list += fmt.Sprintf("%s %d\n", rel, i%2)
	}
	os.MkdirAll(filepath.Join(root, "meta"), 0o755)
	if err := os.WriteFile(filepath.Join(root, "meta", "train.txt"), []byte(list), 0o644); err != nil {
		t.Fatal(err)
	}
	return root, len(sizes)
}

// The flagship config's dataset section, pointed at a small ImageNet tree, gives batches of
// NPID's 224x224 views with each image's index and label; and so does the class-folder
// layout (no ann_file).
func TestImageNetConfigReadsAnImageNetTree(t *testing.T) {
	root, n := imageNetTree(t)
	for _, layout := range []struct {
		name  string
		sets  []string
		label func(i int32) int32
	}{
		{"meta/train.txt", nil, func(i int32) int32 { return i % 2 }},
		// class by class, in file-name order: three images of n01440764, then n01443537
		{"class folders", []string{"train_dataloader.dataset.ann_file=''"}, func(i int32) int32 { return i / 3 }},
	} {
		sets := append([]string{"train_dataloader.dataset.data_root=" + root,
			"train_dataloader.num_workers=2", "train_dataloader.batch_size=4"}, layout.sets...)
		_, cfg, err := LoadConfig("configs/npid/resnet50_8xb32-steplr-200e.toml", sets)
		if err != nil {
			t.Fatalf("%s: %v", layout.name, err)
		}
		d := cfg.TrainDataloader
		ds, err := registry.Build[*datasets.Dataset](&registry.Env{}, d.Dataset)
		if err != nil {
			t.Fatalf("%s: %v", layout.name, err)
		}
		if ds.Len() != n {
			t.Fatalf("%s: %d images, want %d", layout.name, ds.Len(), n)
		}
		l := &datasets.Loader{Dataset: ds, BatchSize: d.BatchSize, Workers: d.NumWorkers, DropLast: d.DropLast, Shuffle: true, Seed: 3}
		var seen []int
		for b, err := range l.Epoch(context.Background(), 0) {
			if err != nil {
				t.Fatalf("%s: %v", layout.name, err)
			}
			if b.Len() != 4 || b.Width != 224 || b.Height != 224 || len(b.Images) != 4*224*224*3 {
				t.Fatalf("%s: a batch of %d images of %dx%d (%d bytes)", layout.name, b.Len(), b.Width, b.Height, len(b.Images))
			}
			for k, i := range b.Indices {
				seen = append(seen, int(i))
				if b.Labels[k] != layout.label(i) {
					t.Errorf("%s: image %d has label %d, want %d", layout.name, i, b.Labels[k], layout.label(i))
				}
			}
		}
		// drop_last: one batch of 4 from 6 images, all different.
		slices.Sort(seen)
		if len(seen) != 4 || len(slices.Compact(seen)) != 4 {
			t.Errorf("%s: the epoch gave images %v", layout.name, seen)
		}
	}
}

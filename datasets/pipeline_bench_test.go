package datasets

import (
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"

	"github.com/goselfsup/goselfsup/internal/shareddata"
	"github.com/goselfsup/goselfsup/registry"
)

// npidPipeline is mmselfsup's NPID training pipeline at the given size.
func npidPipeline(size int) []any {
	return []any{
		map[string]any{"type": "LoadImageFromFile"},
		map[string]any{"type": "RandomResizedCrop", "size": size, "scale": []float64{0.2, 1}, "backend": "pillow"},
		map[string]any{"type": "RandomGrayscale", "prob": 0.2, "keep_channels": true, "channel_weights": []float64{0.114, 0.587, 0.2989}},
		map[string]any{"type": "ColorJitter", "brightness": 0.4, "contrast": 0.4, "saturation": 0.4, "hue": 0.4},
		map[string]any{"type": "RandomFlip", "prob": 0.5},
	}
}

// BenchmarkNPIDPipeline224 runs NPID's pipeline on the COCO128 photos on one goroutine;
// ns/op is per image.
func BenchmarkNPIDPipeline224(b *testing.B) {
	dir, err := shareddata.Dir("coco128-lightly")
	if err != nil {
		b.Skip(err)
	}
	root := filepath.Join(dir, "images")
	entries, _ := os.ReadDir(filepath.Join(root, "train2017"))
	var list []string
	for _, e := range entries {
		list = append(list, "train2017/"+e.Name())
	}
	ann := filepath.Join(b.TempDir(), "list.txt")
	os.WriteFile(ann, []byte(joinLines(list)), 0o644)
	ds, err := registry.Build[*Dataset](&registry.Env{}, registry.NewSpec(registry.Datasets, "ImageList",
		map[string]any{"data_root": root, "ann_file": ann, "with_label": false, "pipeline": npidPipeline(224)}))
	if err != nil {
		b.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(1, 1))
	b.ResetTimer()
	for i := range b.N {
		if _, err := ds.Get(i%ds.Len(), rng); err != nil {
			b.Fatal(err)
		}
	}
}

func joinLines(ls []string) string {
	s := ""
	for _, l := range ls {
		s += l + "\n"
	}
	return s
}

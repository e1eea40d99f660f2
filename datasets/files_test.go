package datasets

import (
	"context"
	"image"
	"image/color"
	"image/jpeg"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/goselfsup/goselfsup/registry"
)

// writeJPEG writes a w x h JPEG with a colour ramp.
func writeJPEG(t *testing.T, path string, w, h int) {
	t.Helper()
	img := image.NewRGBA(image.Rect(0, 0, w, h))
	for y := 0; y < h; y++ {
		for x := 0; x < w; x++ {
			img.Set(x, y, color.RGBA{uint8(x * 255 / w), uint8(y * 255 / h), 128, 255})
		}
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := jpeg.Encode(f, img, &jpeg.Options{Quality: 90}); err != nil {
		t.Fatal(err)
	}
}

func write(t *testing.T, path, text string) {
	t.Helper()
	os.MkdirAll(filepath.Dir(path), 0o755)
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
}

func load() []any { return []any{map[string]any{"type": "LoadImageFromFile"}} }

func TestCorruptAndTruncatedImages(t *testing.T) {
	root := t.TempDir()
	writeJPEG(t, filepath.Join(root, "good.jpg"), 40, 30)
	good, _ := os.ReadFile(filepath.Join(root, "good.jpg"))
	write(t, filepath.Join(root, "garbage.jpg"), "\xff\xd8 this is not a JPEG at all")
	write(t, filepath.Join(root, "truncated.jpg"), string(good[:len(good)/2]))
	write(t, filepath.Join(root, "list.txt"), "good.jpg\ngarbage.jpg\ntruncated.jpg\nmissing.jpg\n")
	for _, goOnly := range []bool{false, true} {
		backend := map[bool]string{false: "cv2", true: "go"}[goOnly]
		ds, err := registry.Build[*Dataset](&registry.Env{}, registry.NewSpec(registry.Datasets, "ImageList", map[string]any{
			"data_root": root, "ann_file": "list.txt", "with_label": false,
			"pipeline": []any{map[string]any{"type": "LoadImageFromFile", "imdecode_backend": backend}}}))
		if err != nil {
			t.Fatal(err)
		}
		if s, err := ds.Get(0, nil); err != nil || s.Image.Width != 40 {
			t.Fatalf("%s: the good image: %v", backend, err)
		}
		for i, name := range []string{"garbage.jpg", "truncated.jpg", "missing.jpg"} {
			_, err := ds.Get(i+1, nil)
			if err == nil || !strings.Contains(err.Error(), filepath.Join(root, name)) {
				t.Errorf("%s: %s: the error %v does not name the file", backend, name, err)
			}
		}
	}
}

func TestSkipCorrupt(t *testing.T) {
	root := t.TempDir()
	var list strings.Builder
	for i := range 8 {
		name := filepath.Join("img", string(rune('a'+i))+".jpg")
		if i == 3 {
			write(t, filepath.Join(root, name), "not an image")
		} else {
			writeJPEG(t, filepath.Join(root, name), 16, 16)
		}
		list.WriteString(name + "\n")
	}
	write(t, filepath.Join(root, "list.txt"), list.String())
	ds, err := registry.Build[*Dataset](&registry.Env{}, registry.NewSpec(registry.Datasets, "ImageList",
		map[string]any{"data_root": root, "ann_file": "list.txt", "with_label": false, "skip_corrupt": true, "pipeline": load()}))
	if err != nil {
		t.Fatal(err)
	}
	var skipped atomic.Int32
	l := &Loader{Dataset: ds, BatchSize: 4, Workers: 2, Seed: 1, OnSkip: func(path string, err error) {
		if !strings.HasSuffix(path, "d.jpg") {
			t.Errorf("skipped %s: %v", path, err)
		}
		skipped.Add(1)
	}}
	n := 0
	for b, err := range l.Epoch(context.Background(), 0) {
		if err != nil {
			t.Fatal(err)
		}
		n += b.Len()
	}
	if n != 8 || skipped.Load() != 1 {
		t.Errorf("%d samples, %d skipped; want 8 and 1", n, skipped.Load())
	}
}

func TestPathsMayNotLeaveTheRoot(t *testing.T) {
	root := t.TempDir()
	for _, line := range []string{"../outside.jpg 0", "/etc/passwd 0", "a/../../b.jpg 0"} {
		write(t, filepath.Join(root, "meta", "train.txt"), "ok/a.jpg 0\n"+line+"\n")
		_, err := registry.Build[*Dataset](&registry.Env{}, registry.NewSpec(registry.Datasets, "ImageNet",
			map[string]any{"data_root": root, "ann_file": "meta/train.txt", "data_prefix": "train", "pipeline": load()}))
		if err == nil || !strings.Contains(err.Error(), "train.txt:2") || !strings.Contains(err.Error(), "leaves the data root") {
			t.Errorf("%q: %v", line, err)
		}
	}
}

func TestVOCLayout(t *testing.T) {
	root := t.TempDir()
	write(t, filepath.Join(root, "ImageSets", "Main", "test.txt"), "000001\n000002\n")
	writeJPEG(t, filepath.Join(root, "JPEGImages", "000001.jpg"), 20, 10)
	writeJPEG(t, filepath.Join(root, "JPEGImages", "000002.jpg"), 20, 10)
	write(t, filepath.Join(root, "Annotations", "000001.xml"), `<annotation>
  <object><name>dog</name><difficult>0</difficult></object>
  <object><name>person</name><difficult>1</difficult></object>
</annotation>`)
	write(t, filepath.Join(root, "Annotations", "000002.xml"), `<annotation>
  <object><name>person</name><difficult>1</difficult></object>
  <object><name>person</name><difficult>0</difficult></object>
  <object><name>cat</name><difficult>1</difficult></object>
</annotation>`)
	ds, err := registry.Build[*Dataset](&registry.Env{}, registry.NewSpec(registry.Datasets, "VOC",
		map[string]any{"data_root": root, "image_set_path": "ImageSets/Main/test.txt", "pipeline": load()}))
	if err != nil {
		t.Fatal(err)
	}
	want := [][]int8{make([]int8, 20), make([]int8, 20)}
	for i := range want {
		for c := range want[i] {
			want[i][c] = -1
		}
	}
	want[0][11], want[0][14] = 1, 0 // dog present; person only difficult
	want[1][14], want[1][7] = 1, 0  // person present (one difficult, one not); cat only difficult
	for i := range want {
		s, err := ds.Get(i, nil)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(s.Targets, want[i]) || s.Image.Width != 20 {
			t.Errorf("image %d: targets %v, want %v", i, s.Targets, want[i])
		}
	}
}

func TestDistributedSampler(t *testing.T) {
	ds := &Dataset{Source: &memorySource{images: make([]Image, 10), labels: make([]int, 10)}}
	seen := map[int]int{}
	for rank := range 3 {
		l := &Loader{Dataset: ds, BatchSize: 2, Shuffle: true, Seed: 4, Rank: rank, WorldSize: 3}
		order := l.Order(0)
		if len(order) != 4 { // 10 samples padded to 12, 4 per rank
			t.Fatalf("rank %d has %d samples, want 4", rank, len(order))
		}
		for _, i := range order {
			seen[i]++
		}
	}
	if len(seen) != 10 {
		t.Errorf("the ranks cover %d of 10 samples", len(seen))
	}
}

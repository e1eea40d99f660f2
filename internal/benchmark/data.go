package benchmark

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/goselfsup/goselfsup/datasets"
	"github.com/goselfsup/goselfsup/internal/cmdline"
	"github.com/goselfsup/goselfsup/internal/shareddata"
	"github.com/goselfsup/goselfsup/registry"
)

// benchData times NPID's training pipeline here and in torchvision, on the same JPEGs, one
// core each: at 224 on the COCO128 photos and at 32 on CIFAR-10's JPEGs; decoding alone too;
// and our loader with one and two workers.
func benchData(args []string, stdout, stderr io.Writer) int {
	fs := newFlags("data", stderr)
	repeat := fs.Int("repeat", 5, "timed passes over the images; each rate is the best pass's")
	cifar := fs.Int("cifar", 2000, "CIFAR-10 JPEGs to use")
	if _, err := parseArgs(fs, args, stdout); err != nil {
		return cmdline.ExitCode(err)
	}
	python, script, err := reference("benchmarks/pipeline_reference.py", "torchvision", "PIL", "numpy")
	if err != nil {
		report(stderr, err)
		return exitFailed
	}
	coco, err := shareddata.Dir("coco128-lightly")
	if err != nil {
		report(stderr, fmt.Errorf("the COCO128 photos: %w", err))
		return exitFailed
	}
	cifarDir, err := shareddata.Dir("cifar10-jpg")
	if err != nil {
		report(stderr, fmt.Errorf("the CIFAR-10 JPEGs: %w", err))
		return exitFailed
	}
	photos, err := filepath.Glob(filepath.Join(coco, "images", "train2017", "*.jpg"))
	if err != nil || len(photos) == 0 {
		report(stderr, errors.New("no COCO128 photos"))
		return exitFailed
	}
	small, err := cifarFiles(filepath.Join(cifarDir, "train"), *cifar)
	if err != nil {
		report(stderr, err)
		return exitFailed
	}

	type row struct {
		what        string
		ours, torch float64
	}
	var rows []row
	for _, set := range []struct {
		name  string
		files []string
		size  int
	}{{"224, COCO128 photos", photos, 224}, {"32, CIFAR-10 JPEGs", small, 32}} {
		fmt.Fprintf(stderr, "timing the pipelines at %s...\n", set.name)
		full, decode, err := timePipelines(python, script, set.files, set.size, *repeat)
		if err != nil {
			report(stderr, err)
			return exitFailed
		}
		rows = append(rows, row{"pipeline " + set.name, full[0], full[1]}, row{"decoding " + set.name, decode[0], decode[1]})
	}
	fmt.Fprintf(stderr, "timing the loader with 1 and 2 workers...\n")
	scaling, err := timeWorkers(photos, 224, *repeat)
	if err != nil {
		report(stderr, err)
		return exitFailed
	}

	fmt.Fprintf(stdout, "NPID's training pipeline (RandomResizedCrop, RandomGrayscale, ColorJitter, RandomFlip; uint8 out),\n")
	fmt.Fprintf(stdout, "one core each; JPEG decoding: %s here, Pillow in torchvision\n\n", datasets.DecoderName(false))
	tw := tabwriter.NewWriter(stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "images/s per core\tgoselfsup\ttorchvision\tratio")
	for _, r := range rows {
		fmt.Fprintf(tw, "%s\t%.1f\t%.1f\t%.2f\n", r.what, r.ours, r.torch, r.ours/r.torch)
	}
	tw.Flush()
	fmt.Fprintf(stdout, "\nour loader at 224, batches of 64: %.1f images/s with 1 worker, %.1f with 2 (%.2fx)\n",
		scaling[0], scaling[1], scaling[1]/scaling[0])
	res := benchResult{Benchmark: "data", Ours: rows[0].ours, Reference: rows[0].torch, Ratio: rows[0].ours / rows[0].torch,
		Unit: "images/s per core at 224", Details: map[string]string{
			"decoder": datasets.DecoderName(false), "ratio_32": fmt.Sprintf("%.2f", rows[2].ours/rows[2].torch),
			"decode_ratio_224": fmt.Sprintf("%.2f", rows[1].ours/rows[1].torch),
			"workers_1":        fmt.Sprintf("%.1f", scaling[0]), "workers_2": fmt.Sprintf("%.1f", scaling[1])}}
	line, _ := json.Marshal(res)
	fmt.Fprintln(stdout, string(line))
	return exitOK
}

// cifarFiles takes n JPEGs from the class folders, the classes in turn.
func cifarFiles(dir string, n int) ([]string, error) {
	classes, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	var per [][]string
	for _, c := range classes {
		files, _ := filepath.Glob(filepath.Join(dir, c.Name(), "*.jpg"))
		sort.Strings(files)
		per = append(per, files)
	}
	var out []string
	for k := 0; len(out) < n; k++ {
		added := false
		for _, files := range per {
			if k < len(files) && len(out) < n {
				out = append(out, files[k])
				added = true
			}
		}
		if !added {
			break
		}
	}
	return out, nil
}

// npidDataset is NPID's training pipeline over image files.
func npidDataset(files []string, size int) (*datasets.Dataset, error) {
	dir, err := os.MkdirTemp("", "goselfsup-bench")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	list := filepath.Join(dir, "list.txt")
	root := filepath.Dir(filepath.Dir(files[0]))
	var b strings.Builder
	for _, f := range files {
		rel, err := filepath.Rel(root, f)
		if err != nil {
			return nil, err
		}
		b.WriteString(rel + "\n")
	}
	if err := os.WriteFile(list, []byte(b.String()), 0o644); err != nil {
		return nil, err
	}
	pipeline := []any{
		map[string]any{"type": "LoadImageFromFile"},
		map[string]any{"type": "RandomResizedCrop", "size": size, "scale": []float64{0.2, 1}, "backend": "pillow"},
		map[string]any{"type": "RandomGrayscale", "prob": 0.2, "keep_channels": true, "channel_weights": []float64{0.114, 0.587, 0.2989}},
		map[string]any{"type": "ColorJitter", "brightness": 0.4, "contrast": 0.4, "saturation": 0.4, "hue": 0.4},
		map[string]any{"type": "RandomFlip", "prob": 0.5},
	}
	return registry.Build[*datasets.Dataset](&registry.Env{}, registry.NewSpec(registry.Datasets, "ImageList",
		map[string]any{"data_root": root, "ann_file": list, "with_label": false, "pipeline": pipeline}))
}

// timePipelines returns the images per second, one core each, of our pipeline and
// torchvision's (full) and of decoding alone (decode), ours first: the best of passes
// passes over the files each, ours and torchvision's alternating, so that both see the
// machine in the same state, and the best because other work can only slow a pass down.
func timePipelines(python, script string, files []string, size, passes int) (full, decode [2]float64, err error) {
	ds, err := npidDataset(files, size)
	if err != nil {
		return full, decode, err
	}
	data := make([][]byte, len(files))
	for i, f := range files {
		if data[i], err = os.ReadFile(f); err != nil {
			return full, decode, err
		}
	}
	ref, err := startTorchvision(python, script, files, size)
	if err != nil {
		return full, decode, err
	}
	defer ref.close()
	rng := rand.New(rand.NewPCG(1, 2))
	for i := range min(4, ds.Len()) { // warm up
		if _, err := ds.Get(i, rng); err != nil {
			return full, decode, err
		}
	}
	ours := map[string]func(i int) error{
		"pipeline": func(i int) error { _, err := ds.Get(i, rng); return err },
		"decode":   func(i int) error { _, err := datasets.DecodeBytes(data[i]); return err },
	}
	for range passes {
		for what, best := range map[string]*[2]float64{"pipeline": &full, "decode": &decode} {
			t0 := time.Now()
			for i := range len(files) {
				if err := ours[what](i); err != nil {
					return full, decode, err
				}
			}
			best[0] = max(best[0], float64(len(files))/time.Since(t0).Seconds())
			rate, err := ref.pass(what)
			if err != nil {
				return full, decode, err
			}
			best[1] = max(best[1], rate)
		}
	}
	return full, decode, nil
}

// torchvisionRef is benchmarks/pipeline_reference.py bench, which times a pass over its
// images whenever it is asked to.
type torchvisionRef struct {
	cmd  *exec.Cmd
	in   io.WriteCloser
	out  *bufio.Scanner
	list string
}

func startTorchvision(python, script string, files []string, size int) (*torchvisionRef, error) {
	list, err := os.CreateTemp("", "goselfsup-bench-*.txt")
	if err != nil {
		return nil, err
	}
	list.WriteString(strings.Join(files, "\n") + "\n")
	list.Close()
	r := &torchvisionRef{list: list.Name()}
	r.cmd = exec.Command(python, script, "bench", "--size", fmt.Sprint(size), "--images", list.Name())
	r.cmd.Stderr = os.Stderr
	if r.in, err = r.cmd.StdinPipe(); err != nil {
		return nil, err
	}
	stdout, err := r.cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := r.cmd.Start(); err != nil {
		os.Remove(r.list)
		return nil, fmt.Errorf("the torchvision reference: %w", err)
	}
	r.out = bufio.NewScanner(stdout)
	if !r.out.Scan() { // the versions: it is ready
		r.close()
		return nil, fmt.Errorf("the torchvision reference did not start: %v", r.cmd.Wait())
	}
	return r, nil
}

// pass asks for one pass of "pipeline" or "decode" and returns its images per second.
func (r *torchvisionRef) pass(what string) (float64, error) {
	if _, err := fmt.Fprintln(r.in, what); err != nil {
		return 0, fmt.Errorf("the torchvision reference: %w", err)
	}
	if !r.out.Scan() {
		return 0, fmt.Errorf("the torchvision reference stopped: %v", r.out.Err())
	}
	var res struct {
		Rate float64 `json:"images_per_second"`
	}
	if err := json.Unmarshal(r.out.Bytes(), &res); err != nil || res.Rate <= 0 {
		return 0, fmt.Errorf("the torchvision reference printed %q", r.out.Text())
	}
	return res.Rate, nil
}

func (r *torchvisionRef) close() {
	r.in.Close()
	r.cmd.Wait()
	os.Remove(r.list)
}

// timeWorkers returns our loader's images per second with 1 and 2 workers.
func timeWorkers(files []string, size, repeat int) ([2]float64, error) {
	var rates [2]float64
	ds, err := npidDataset(files, size)
	if err != nil {
		return rates, err
	}
	for w := 1; w <= 2; w++ {
		l := &datasets.Loader{Dataset: ds, BatchSize: 64, Workers: w, DropLast: true, Shuffle: true, Seed: 1, Prefetch: 2}
		n := 0
		t0 := time.Now()
		for epoch := range repeat {
			for b, err := range l.Epoch(context.Background(), epoch) {
				if err != nil {
					return rates, err
				}
				n += b.Len()
			}
		}
		rates[w-1] = float64(n) / time.Since(t0).Seconds()
	}
	return rates, nil
}

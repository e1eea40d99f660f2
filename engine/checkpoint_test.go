package engine

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/gomlx/gomlx/pkg/core/tensors"

	"github.com/goselfsup/goselfsup/internal/pyref"
)

func TestNPYRoundTrip(t *testing.T) {
	for _, tt := range []*tensors.Tensor{
		tensors.FromValue([][]float32{{1, 2, 3}, {4, 5, 6}}),
		tensors.FromValue([]int64{-1, 1 << 40}),
		tensors.FromValue([]uint64{1, 2, 3}),
		tensors.FromScalar(float32(-1)),
		tensors.FromValue([][][]int32{{{7}}}),
	} {
		var buf bytes.Buffer
		if err := WriteNPY(&buf, tt); err != nil {
			t.Fatal(err)
		}
		if (bytes.IndexByte(buf.Bytes(), '\n')+1)%64 != 0 {
			t.Errorf("%s: the data does not start at a multiple of 64", tt.Shape())
		}
		back, err := ReadNPY(&buf)
		if err != nil {
			t.Fatal(err)
		}
		if !back.Shape().Equal(tt.Shape()) || !reflect.DeepEqual(back.Value(), tt.Value()) {
			t.Errorf("round trip of %v gave %v", tt.Value(), back.Value())
		}
	}
}

// NumPy reads our .npy files and our checkpoints (as .npz), when it is installed.
func TestNumPyReadsCheckpoints(t *testing.T) {
	python, err := pyref.Python("numpy")
	if err != nil {
		t.Skip(err)
	}
	dir := t.TempDir()
	path := filepath.Join(dir, "epoch_1.ckpt")
	c := &Checkpoint{Meta: CheckpointMeta{Epoch: 1}, Tensors: map[string]*tensors.Tensor{
		"backbone.conv1.weight": tensors.FromValue([][]float32{{1.5, -2}, {3, 4}}),
		"optimizer.step":        tensors.FromScalar(int64(7)),
	}}
	if err := SaveCheckpoint(path, c); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(python, "-c", `
import numpy as np, sys, zipfile, json
z = np.load(sys.argv[1])
w = z["tensors/backbone.conv1.weight"]
print(w.dtype, w.shape, w.tolist(), int(z["tensors/optimizer.step"]))
print(json.loads(zipfile.ZipFile(sys.argv[1]).read("meta.json"))["epoch"])
`, path).CombinedOutput()
	if err != nil {
		t.Fatalf("numpy: %v\n%s", err, out)
	}
	if want := "float32 (2, 2) [[1.5, -2.0], [3.0, 4.0]] 7\n1\n"; string(out) != want {
		t.Errorf("numpy read %q, want %q", out, want)
	}
	back, err := LoadCheckpoint(path)
	if err != nil {
		t.Fatal(err)
	}
	if back.Meta.Epoch != 1 || back.Meta.Format != CheckpointFormat || len(back.Tensors) != 2 {
		t.Errorf("loaded %+v", back.Meta)
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Errorf("temporary files left: %v", entries)
	}
	os.WriteFile(filepath.Join(dir, "junk.ckpt"), []byte("not a zip"), 0o644)
	if _, err := LoadCheckpoint(filepath.Join(dir, "junk.ckpt")); err == nil || !strings.Contains(err.Error(), "junk.ckpt") {
		t.Errorf("a corrupt checkpoint: %v", err)
	}
}

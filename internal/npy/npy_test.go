package npy

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"testing"

	"github.com/goselfsup/goselfsup/internal/pyref"
)

func TestRoundTrip(t *testing.T) {
	var buf bytes.Buffer
	want := []float32{1, -2.5, 3, 4, 5, 6}
	if err := Write(&buf, []int{2, 3}, want); err != nil {
		t.Fatal(err)
	}
	if buf.Len()%64 != 24 { // a 64-byte aligned header, then 6 x 4 bytes
		t.Errorf("%d bytes", buf.Len())
	}
	shape, got, err := Read[float32](bytes.NewReader(buf.Bytes()))
	if err != nil || !reflect.DeepEqual(shape, []int{2, 3}) || !reflect.DeepEqual(got, want) {
		t.Errorf("read %v %v %v", shape, got, err)
	}
	if _, _, err := Read[float64](bytes.NewReader(buf.Bytes())); err == nil {
		t.Error("float32 data read as float64")
	}
	if err := Write(&buf, []int{4}, []int8{1}); err == nil {
		t.Error("1 value written for shape [4]")
	}
}

// NumPy reads what Write writes.
func TestNumPyReadsIt(t *testing.T) {
	python, err := pyref.Python("numpy")
	if err != nil {
		t.Skip(err)
	}
	dir := t.TempDir()
	for name, write := range map[string]func(*os.File) error{
		"f.npy": func(f *os.File) error { return Write(f, []int{2, 2}, []float32{1.5, 2, 3, 4}) },
		"i.npy": func(f *os.File) error { return Write(f, []int{3}, []int8{-1, 0, 1}) },
		"l.npy": func(f *os.File) error { return Write(f, []int{2}, []int64{7, 1 << 40}) },
	} {
		f, err := os.Create(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		if err := write(f); err != nil {
			t.Fatal(err)
		}
		f.Close()
	}
	out, err := exec.Command(python, "-c", `
import numpy as np, sys
for n in "fil":
    a = np.load(sys.argv[1] + "/" + n + ".npy")
    print(a.dtype, a.shape, a.sum())
`, dir).CombinedOutput()
	if err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	want := "float32 (2, 2) 10.5\nint8 (3,) 0\nint64 (2,) 1099511627783\n"
	if string(out) != want {
		t.Errorf("NumPy reads:\n%s\nwant:\n%s", out, want)
	}
}

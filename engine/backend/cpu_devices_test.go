package backend

import (
	"slices"
	"strings"
	"testing"

	"github.com/gomlx/gomlx/backends"
	"github.com/gomlx/gomlx/pkg/core/dtypes"
	"github.com/gomlx/gomlx/pkg/core/shapes"
	"github.com/gomlx/gomlx/pkg/core/tensors"
)

func TestDevicesOption(t *testing.T) {
	for _, tc := range []struct {
		config  string
		devices int
		native  bool
		rest    string
	}{
		{"", 1, true, ""},
		{"devices=1", 1, true, ""},
		{"devices=4", 4, true, ""},
		{"kernels=off,devices=3", 3, false, ""},
		{"devices=2,parallelism=2,kernels=on", 2, true, "parallelism=2"},
	} {
		cfg, rest, err := cpuOptions(tc.config)
		if err != nil {
			t.Fatalf("%q: %v", tc.config, err)
		}
		if cfg.devices != tc.devices || cfg.native != tc.native || rest != tc.rest {
			t.Errorf("%q: got %+v, rest %q; want devices %d, native %v, rest %q", tc.config, cfg, rest, tc.devices, tc.native, tc.rest)
		}
	}
	for _, bad := range []string{"devices=0", "devices=-2", "devices=two", "devices=", "devices=1.5", "devices=100000"} {
		if _, _, err := cpuOptions(bad); err == nil || !strings.Contains(err.Error(), "devices=") {
			t.Errorf("%q: want an error naming devices=, got %v", bad, err)
		}
	}
	if _, err := New("go:devices=0"); err == nil {
		t.Error(`New("go:devices=0"): no error`)
	}
	for _, config := range []string{"go:devices=3", "go:devices=3,kernels=off"} {
		b, err := New(config)
		if err != nil {
			t.Fatal(err)
		}
		if b.NumDevices() != 3 {
			t.Errorf("%s: NumDevices() = %d, want 3", config, b.NumDevices())
		}
		if !strings.Contains(b.Description(), "3 virtual devices") {
			t.Errorf("%s: description %q", config, b.Description())
		}
	}
	b, err := New("go")
	if err != nil {
		t.Fatal(err)
	}
	if b.NumDevices() != 1 {
		t.Errorf("go: NumDevices() = %d, want 1", b.NumDevices())
	}
}

// TestDeviceBuffers moves data to and from every device through each of the backend's
// buffer methods.
func TestDeviceBuffers(t *testing.T) {
	b, err := New("go:devices=3")
	if err != nil {
		t.Fatal(err)
	}
	s := shapes.Make(dtypes.Float32, 2, 3)
	data := []float32{1, 2, 3, 4, 5, 6}
	for d := range backends.DeviceNum(3) {
		buf, err := b.BufferFromFlatData(d, data, s)
		if err != nil {
			t.Fatalf("device %d: %v", d, err)
		}
		if got, err := b.BufferDeviceNum(buf); err != nil || got != d {
			t.Errorf("BufferDeviceNum = %d, %v; want %d", got, err, d)
		}
		if got, err := b.BufferShape(buf); err != nil || !got.Equal(s) {
			t.Errorf("BufferShape = %s, %v", got, err)
		}
		out := make([]float32, 6)
		if err := b.BufferToFlatData(buf, out); err != nil || !slices.Equal(out, data) {
			t.Errorf("device %d: BufferToFlatData = %v, %v", d, out, err)
		}
		if f, err := b.BufferData(buf); err != nil || !slices.Equal(f.([]float32), data) {
			t.Errorf("device %d: BufferData = %v, %v", d, f, err)
		}
		to := (d + 1) % 3
		moved, err := b.BufferCopyToDevice(buf, to)
		if err != nil {
			t.Fatalf("BufferCopyToDevice(%d -> %d): %v", d, to, err)
		}
		if got, _ := b.BufferDeviceNum(moved); got != to {
			t.Errorf("copied buffer on device %d, want %d", got, to)
		}
		if _, err := b.BufferCopyToDevice(buf, d); err == nil {
			t.Errorf("BufferCopyToDevice to its own device %d: no error", d)
		}
		if err := b.BufferFinalize(buf); err != nil {
			t.Error(err)
		}
		f, _ := b.BufferData(moved)
		if !slices.Equal(f.([]float32), data) {
			t.Errorf("copy to device %d: %v", to, f)
		}
		shared, flat, err := b.NewSharedBuffer(d, s)
		if err != nil {
			t.Fatal(err)
		}
		copy(flat.([]float32), data)
		if got, _ := b.BufferDeviceNum(shared); got != d {
			t.Errorf("shared buffer on device %d, want %d", got, d)
		}
		// A tensor on device d reads back through the backend.
		tt, err := tensors.FromBuffer(b, shared)
		if err != nil {
			t.Fatal(err)
		}
		if got := tensors.MustCopyFlatData[float32](tt); !slices.Equal(got, data) {
			t.Errorf("tensor from device %d: %v", d, got)
		}
		_ = b.BufferFinalize(moved)
	}
	if _, err := b.BufferFromFlatData(3, data, s); err == nil {
		t.Error("device 3 of 3: no error")
	}
	if _, _, err := b.NewSharedBuffer(-1, s); err == nil {
		t.Error("device -1: no error")
	}
	one, _ := New("go")
	if _, err := one.BufferFromFlatData(1, data, s); err == nil || !strings.Contains(err.Error(), "devices=N") {
		t.Errorf("device 1 of a one-device backend: %v", err)
	}
}

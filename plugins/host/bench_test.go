package host

import (
	"context"
	"os/exec"
	"path/filepath"
	"testing"
)

// BenchmarkPluginCall is the overhead of one plugin call: start the process (go-plugin's
// handshake, AutoMTLS), one Info call over gRPC, and the graceful stop. Its reference, in the
// same run, is BenchmarkProcessStart: starting the same binary for `describe`, which only
// prints its manifest.
func BenchmarkPluginCall(b *testing.B) {
	h := New(Options{Dirs: []string{pluginDir}, CacheDir: b.TempDir()})
	bin, ok := h.Binary("logreg")
	if !ok {
		b.Fatal("no logreg plugin")
	}
	for b.Loop() {
		s, err := h.Start(bin, "")
		if err != nil {
			b.Fatal(err)
		}
		if _, err := s.Info(context.Background()); err != nil {
			b.Fatal(err)
		}
		s.Close()
	}
}

func BenchmarkProcessStart(b *testing.B) {
	path := filepath.Join(pluginDir, "goselfsup-plugin-logreg")
	for b.Loop() {
		if err := exec.Command(path, "describe").Run(); err != nil {
			b.Fatal(err)
		}
	}
}

package host

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/goselfsup/goselfsup/plugins/pb"
)

// A first-party plugin is known by its manifest before it is built; the host builds it from
// the checkout on its first start, records its checksum, and runs it like any plugin. An
// installed plugin of the same name takes its place.
func TestFirstPartyPluginIsBuiltOnFirstStart(t *testing.T) {
	fp := FirstParty{Name: "misbehave", Package: Module + "/plugins/host/testdata/misbehave", Manifest: &pb.Manifest{Name: "misbehave"}}
	build := t.TempDir()
	h := New(Options{Dirs: []string{}, CacheDir: "-", FirstParty: []FirstParty{fp}, BuildDir: build})
	b, ok := h.Binary("misbehave")
	if !ok || !b.FirstParty() || b.Path != "" {
		t.Fatalf("before the build: %+v", b)
	}
	s, err := h.Start(b, "")
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if m, err := s.Info(context.Background()); err != nil || m.Name != "misbehave" {
		t.Fatalf("Info: %v, %v", m, err)
	}
	want := filepath.Join(build, "goselfsup-plugin-misbehave")
	if b.Path != want {
		t.Errorf("built at %s, want %s", b.Path, want)
	}
	if err := b.Verify(); err != nil {
		t.Errorf("its checksum file: %v", err)
	}

	h = New(Options{Dirs: []string{pluginDir}, CacheDir: "-", FirstParty: []FirstParty{fp}, BuildDir: build})
	if b, _ := h.Binary("misbehave"); b.FirstParty() || b.Dir != pluginDir {
		t.Errorf("the installed plugin did not take the first-party one's place: %+v", b)
	}
}

// Outside a goselfsup checkout, a first-party plugin cannot be built: the error says how to
// install it.
func TestFirstPartyPluginOutsideTheCheckout(t *testing.T) {
	fp := FirstParty{Name: "misbehave", Package: Module + "/plugins/host/testdata/misbehave", Manifest: &pb.Manifest{Name: "misbehave"}}
	build := t.TempDir()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "go.mod"), []byte("module example.com/other\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Chdir(dir)
	h := New(Options{Dirs: []string{}, CacheDir: "-", FirstParty: []FirstParty{fp}, BuildDir: build})
	b, _ := h.Binary("misbehave")
	_, err := h.Start(b, "")
	if err == nil {
		t.Fatal("started")
	}
	for _, want := range []string{"plugin misbehave", "module example.com/other", "go build -o ~/.config/goselfsup/plugins/goselfsup-plugin-misbehave ./plugins/host/testdata/misbehave", "verify --write misbehave"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("the error lacks %q: %v", want, err)
		}
	}
}

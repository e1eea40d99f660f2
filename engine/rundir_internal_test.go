package engine

import (
	"os"
	"path/filepath"
	"testing"
	"time"
)

// Runs that start in the same second get folders of their own.
func TestRunDirsOfTheSameSecond(t *testing.T) {
	work := filepath.Join(t.TempDir(), "work")
	at := time.Date(2026, 12, 1, 23, 49, 5, 0, time.UTC)
	var got []string
	for range 3 {
		dir, err := newRunDir(work, at)
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, filepath.Base(dir))
	}
	want := []string{"20261201_234905", "20261201_234905_1", "20261201_234905_2"}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("run folders %v, want %v", got, want)
		}
		if st, err := os.Stat(filepath.Join(work, want[i])); err != nil || !st.IsDir() {
			t.Errorf("%s: %v", want[i], err)
		}
	}
}

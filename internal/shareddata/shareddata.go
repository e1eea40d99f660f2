// Package shareddata gives tests and benchmarks real image data from the test-data folder,
// shared/data beside the checkout (or beside a folder above it): each dataset is a tar.gz
// there, checked against its sha256 and unpacked once into the user's cache folder. Without
// the folder, Dir reports that the data is absent, and the tests that need it skip.
package shareddata

import (
	"archive/tar"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
)

// Checksums are the sha256 sums of the archives, by dataset name (the file is <name>.tar.gz).
var Checksums = map[string]string{
	"cifar10-jpg":     "d877bdec11f54282b92da36e9f045bd305d663b1223e3822baff39ca9ff6690a",
	"coco128-lightly": "dc5cba4ce84431644176346b165bb2901876f3f11ae13dc48316b86f47b39a39",
}

// ErrAbsent means the test-data folder is not there.
var ErrAbsent = errors.New("no test data: the folder shared/data beside the checkout is absent")

// Dir returns the folder where the dataset name is unpacked, unpacking it first if needed.
func Dir(name string) (string, error) {
	sum, ok := Checksums[name]
	if !ok {
		return "", fmt.Errorf("unknown test dataset %q", name)
	}
	archive, err := findArchive(name + ".tar.gz")
	if err != nil {
		return "", err
	}
	cache, err := os.UserCacheDir()
	if err != nil {
		cache = os.TempDir()
	}
	dir := filepath.Join(cache, "goselfsup", "data", name)
	marker := filepath.Join(dir, ".sha256")
	if got, err := os.ReadFile(marker); err == nil && strings.TrimSpace(string(got)) == sum {
		return dir, nil
	}
	if err := verify(archive, sum); err != nil {
		return "", err
	}
	tmp := dir + ".partial"
	os.RemoveAll(tmp)
	if err := untar(archive, tmp); err != nil {
		return "", err
	}
	os.RemoveAll(dir)
	if err := os.Rename(tmp, dir); err != nil {
		return "", err
	}
	return dir, os.WriteFile(marker, []byte(sum+"\n"), 0o644)
}

// findArchive looks for shared/data/<file> beside the working directory and beside each
// folder above it.
func findArchive(file string) (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		p := filepath.Join(dir, "..", "shared", "data", file)
		if _, err := os.Stat(p); err == nil {
			return p, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", ErrAbsent
		}
		dir = parent
	}
}

func verify(path, sum string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return err
	}
	if got := hex.EncodeToString(h.Sum(nil)); got != sum {
		return fmt.Errorf("%s: sha256 %s, want %s", path, got, sum)
	}
	return nil
}

func untar(path, dst string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	tr := tar.NewReader(zr)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return fmt.Errorf("%s: %w", path, err)
		}
		if !filepath.IsLocal(h.Name) {
			return fmt.Errorf("%s: entry %q leaves the archive", path, h.Name)
		}
		target := filepath.Join(dst, h.Name)
		switch h.Typeflag {
		case tar.TypeDir:
			if err := os.MkdirAll(target, 0o755); err != nil {
				return err
			}
		case tar.TypeReg:
			if err := os.MkdirAll(filepath.Dir(target), 0o755); err != nil {
				return err
			}
			out, err := os.Create(target)
			if err != nil {
				return err
			}
			_, err = io.Copy(out, tr)
			out.Close()
			if err != nil {
				return err
			}
		}
	}
}

// LinkOrCopy makes dst a symbolic link to src (made absolute), or a copy of it where links
// fail; src must exist. The fixture tools lay out the test data's images this way.
func LinkOrCopy(src, dst string) error {
	if _, err := os.Stat(src); err != nil {
		return err
	}
	os.Remove(dst)
	if abs, err := filepath.Abs(src); err == nil && os.Symlink(abs, dst) == nil {
		return nil
	}
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.Create(dst)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

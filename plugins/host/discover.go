// Package host finds goselfsup plugins, checks them, starts them and talks to them, and
// adds their components to a registry, so that a config names a plugin's evaluator as it
// names a built-in one.
package host

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"time"

	"google.golang.org/protobuf/encoding/protojson"

	"github.com/goselfsup/goselfsup/plugins/pb"
	"github.com/goselfsup/goselfsup/plugins/protocol"
)

// PathEnv lists folders of plugins, searched first, separated as PATH is.
const PathEnv = "GOSELFSUP_PLUGIN_PATH"

// ChecksumSuffix names a binary's checksum file: goselfsup-plugin-x_SHA256SUM holds the
// hex sha256 of goselfsup-plugin-x (Packer's convention; `tools/plugin verify --write`
// writes it).
const ChecksumSuffix = "_SHA256SUM"

// DefaultDirs are the folders searched for plugins, in order: those of
// $GOSELFSUP_PLUGIN_PATH, the user's (~/.config/goselfsup/plugins on Linux) and the
// project's (plugins/ in the working directory).
func DefaultDirs() []string {
	var dirs []string
	for _, d := range filepath.SplitList(os.Getenv(PathEnv)) {
		if d != "" {
			dirs = append(dirs, d)
		}
	}
	if cfg, err := os.UserConfigDir(); err == nil {
		dirs = append(dirs, filepath.Join(cfg, "goselfsup", "plugins"))
	}
	return append(dirs, "plugins")
}

// Binary is a plugin program found on disk.
type Binary struct {
	// Name is the plugin's name: the file name without goselfsup-plugin-.
	Name string
	Path string
	// Shadowed are files of the same name later in the search order, which are not used.
	Shadowed []string
	// Manifest is what the binary's describe printed (or its cached copy).
	Manifest *pb.Manifest
	// Checksum is the sha256 its checksum file expects, "" without one.
	Checksum string
}

// find lists the plugin binaries of dirs; the first of a name wins.
func find(dirs []string) ([]*Binary, []error) {
	byName := map[string]*Binary{}
	var errs []error
	var out []*Binary
	for _, dir := range dirs {
		entries, err := os.ReadDir(dir)
		if err != nil {
			if !errors.Is(err, os.ErrNotExist) {
				errs = append(errs, fmt.Errorf("plugin folder %s: %w", dir, err))
			}
			continue
		}
		for _, e := range entries {
			name, ok := strings.CutPrefix(e.Name(), protocol.BinaryPrefix)
			if !ok || strings.HasSuffix(name, ChecksumSuffix) || strings.HasPrefix(name, ".") {
				continue
			}
			if runtime.GOOS == "windows" {
				if name, ok = strings.CutSuffix(name, ".exe"); !ok {
					continue
				}
			}
			path, err := filepath.Abs(filepath.Join(dir, e.Name()))
			if err != nil {
				errs = append(errs, err)
				continue
			}
			info, err := os.Stat(path)
			if err != nil || !info.Mode().IsRegular() || runtime.GOOS != "windows" && info.Mode()&0o111 == 0 {
				errs = append(errs, fmt.Errorf("%s is not an executable file", path))
				continue
			}
			if b := byName[name]; b != nil {
				b.Shadowed = append(b.Shadowed, path)
				continue
			}
			b := &Binary{Name: name, Path: path}
			if sum, err := os.ReadFile(path + ChecksumSuffix); err == nil {
				if f := strings.Fields(string(sum)); len(f) > 0 {
					b.Checksum = strings.ToLower(f[0])
				}
			}
			byName[name] = b
			out = append(out, b)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, errs
}

// SHA256 returns the hex sha256 of a file.
func SHA256(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// ErrChecksum is a binary whose sha256 differs from its checksum file's.
var ErrChecksum = errors.New("checksum mismatch")

// Verify compares the binary's sha256 with its checksum file. Without a checksum file it
// returns an error that is not ErrChecksum.
func (b *Binary) Verify() error {
	if b.Checksum == "" {
		return fmt.Errorf("plugin %s: %s has no checksum file %s", b.Name, b.Path, filepath.Base(b.Path)+ChecksumSuffix)
	}
	got, err := SHA256(b.Path)
	if err != nil {
		return err
	}
	if got != b.Checksum {
		return fmt.Errorf("plugin %s: %w: %s has sha256 %s, its checksum file says %s", b.Name, ErrChecksum, b.Path, got, b.Checksum)
	}
	return nil
}

// describeTimeout bounds `describe`, which must only print the manifest.
const describeTimeout = 10 * time.Second

// describe returns the binary's manifest from the cache, or runs `describe` and caches
// it. The cache key is the file's path, size and modification time.
func describe(b *Binary, cacheDir string) (*pb.Manifest, error) {
	info, err := os.Stat(b.Path)
	if err != nil {
		return nil, err
	}
	key := sha256.Sum256([]byte(fmt.Sprintf("%s\x00%d\x00%d", b.Path, info.Size(), info.ModTime().UnixNano())))
	cache := ""
	if cacheDir != "" {
		cache = filepath.Join(cacheDir, hex.EncodeToString(key[:16])+".json")
		if data, err := os.ReadFile(cache); err == nil {
			m := new(pb.Manifest)
			if protojson.Unmarshal(data, m) == nil {
				return m, nil
			}
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), describeTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, b.Path, "describe")
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if ctx.Err() != nil {
		return nil, fmt.Errorf("plugin %s: `%s describe` did not finish within %s", b.Name, b.Path, describeTimeout)
	}
	if err != nil {
		return nil, fmt.Errorf("plugin %s: `%s describe`: %v: %s", b.Name, b.Path, err, strings.TrimSpace(stderr.String()))
	}
	m := new(pb.Manifest)
	if err := protojson.Unmarshal(out, m); err != nil {
		return nil, fmt.Errorf("plugin %s: `%s describe` printed no manifest: %v", b.Name, b.Path, err)
	}
	if m.Name != b.Name {
		return nil, fmt.Errorf("plugin %s: %s calls itself %q", b.Name, b.Path, m.Name)
	}
	if cache != "" {
		if err := os.MkdirAll(cacheDir, 0o755); err == nil {
			tmp := cache + ".partial"
			if os.WriteFile(tmp, out, 0o644) == nil {
				_ = os.Rename(tmp, cache)
			}
		}
	}
	return m, nil
}

// ManifestJSON formats a manifest for people: protojson's output, re-indented with
// encoding/json, since protojson varies its spacing on purpose.
func ManifestJSON(m *pb.Manifest) string {
	data, err := protojson.MarshalOptions{Multiline: true, UseProtoNames: true}.Marshal(m)
	if err != nil {
		return fmt.Sprint(m)
	}
	var v any
	if json.Unmarshal(data, &v) == nil {
		if pretty, err := json.MarshalIndent(v, "", "  "); err == nil {
			return string(pretty)
		}
	}
	return string(data)
}

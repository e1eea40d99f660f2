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
	"slices"
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

// DefaultDirs are the folders searched for plugins unless told otherwise, in order: those of
// $GOSELFSUP_PLUGIN_PATH and the user's (~/.config/goselfsup/plugins on Linux). A project's
// plugins/ folder is not among them: it comes with whatever was checked out or unpacked
// there, and is searched only when named (tools' --plugin-dir).
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
	return dirs
}

// Binary is a plugin program found on disk.
type Binary struct {
	// Name is the plugin's name: the file name without goselfsup-plugin-.
	Name string
	Path string
	// Dir is the searched folder it was found in, as given.
	Dir string
	// Shadowed are files of the same name later in the search order, which are not used.
	Shadowed []string
	// Manifest is what the binary's describe printed (or its cached copy); nil when the
	// plugin did not load.
	Manifest *pb.Manifest
	// Checksum is the sha256 its checksum file expects, "" without one.
	Checksum string
	// Err says why the plugin did not load (nil when it did): ErrUntrusted, ErrChecksum, or
	// a failed `describe`. A plugin that did not load was not run.
	Err error

	// firstParty is set for a first-party plugin that the host builds when it starts it;
	// Path, Dir and Checksum are set by the build.
	firstParty *FirstParty
}

// FirstParty reports whether the binary is one of goselfsup's own plugins, built from the
// checkout when it first runs (then Path is "" until it is built).
func (b *Binary) FirstParty() bool { return b.firstParty != nil }

// find lists the plugin binaries of dirs; the first of a name wins. It runs nothing.
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
			b := &Binary{Name: name, Path: path, Dir: dir}
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

var (
	// ErrUntrusted is a binary without a checksum file: nobody approved it, so it is not
	// run.
	ErrUntrusted = errors.New("no checksum recorded")
	// ErrChecksum is a binary whose sha256 differs from its checksum file's: it changed
	// since it was approved, so it is not run.
	ErrChecksum = errors.New("checksum mismatch")
)

// ApproveCommand is the command that records the binary's checksum, the user's approval:
// `tools/plugin verify --write NAME`, with --plugin-dir when the binary's folder is not
// searched by default.
func (b *Binary) ApproveCommand() string {
	cmd := "tools/plugin verify --write "
	if b.Dir != "" && !slices.Contains(DefaultDirs(), b.Dir) {
		cmd += "--plugin-dir " + b.Dir + " "
	}
	return cmd + b.Name
}

// Verify compares the binary's sha256 with its checksum file's: an error wrapping
// ErrUntrusted without a checksum file, ErrChecksum when they differ.
func (b *Binary) Verify() error {
	_, err := b.verify()
	if err != nil {
		return fmt.Errorf("plugin %s (%s): %w", b.Name, b.Path, err)
	}
	return nil
}

// verify returns the binary's sha256 if it matches its checksum file, or why not (an error
// without the plugin's name, since it is the reason a plugin did not load).
func (b *Binary) verify() (string, error) {
	if b.Checksum == "" {
		return "", fmt.Errorf("%w: %s has no %s; approve it with `%s` once you trust it",
			ErrUntrusted, filepath.Base(b.Path), filepath.Base(b.Path)+ChecksumSuffix, b.ApproveCommand())
	}
	got, err := SHA256(b.Path)
	if err != nil {
		return "", err
	}
	if got != b.Checksum {
		return "", fmt.Errorf("%w: %s has sha256 %s, %s says %s; it changed since it was approved: reinstall it, or approve it as it is now with `%s`",
			ErrChecksum, filepath.Base(b.Path), got, filepath.Base(b.Path)+ChecksumSuffix, b.Checksum, b.ApproveCommand())
	}
	return got, nil
}

// describeTimeout bounds `describe`, which must only print the manifest.
const describeTimeout = 10 * time.Second

// describe verifies the binary, then returns its manifest: from the cache, or by running
// `describe` and caching what it prints. Nothing runs unless the binary's sha256 matches its
// checksum file, which is checked every time, on the cache's way too: the cache is keyed by
// that sha256, so a cached manifest is only ever that of the approved content.
//
// The binary is hashed immediately before it runs. A file swapped in between (a window of
// one fork) would still run; so it would with go-plugin's own check. The checksum file is an
// approval record beside the binary, not a defence against someone who can write the folder.
func describe(b *Binary, cacheDir string) (*pb.Manifest, error) {
	sum, err := b.verify()
	if err != nil {
		return nil, err
	}
	cache := ""
	if cacheDir != "" {
		key := sha256.Sum256([]byte(b.Name + "\x00" + sum))
		cache = filepath.Join(cacheDir, hex.EncodeToString(key[:16])+".json")
		if data, err := os.ReadFile(cache); err == nil {
			m := new(pb.Manifest)
			if protojson.Unmarshal(data, m) == nil && m.Name == b.Name {
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
		return nil, fmt.Errorf("`describe` did not finish within %s", describeTimeout)
	}
	if err != nil {
		msg := fmt.Sprintf("`describe` failed: %v", err)
		if e := strings.TrimSpace(stderr.String()); e != "" {
			msg += ": " + tail(e, 500)
		}
		return nil, errors.New(msg)
	}
	m := new(pb.Manifest)
	if err := protojson.Unmarshal(out, m); err != nil {
		return nil, fmt.Errorf("`describe` printed no manifest: %v", err)
	}
	if m.Name != b.Name {
		return nil, fmt.Errorf("its `describe` calls it %q", m.Name)
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

// tail returns the last n bytes of s, marked as cut.
func tail(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return "..." + s[len(s)-n:]
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

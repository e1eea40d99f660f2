package host

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/goselfsup/goselfsup/plugins/pb"
	"github.com/goselfsup/goselfsup/plugins/protocol"
)

// FirstParty is a plugin of goselfsup's own source tree, such as the segmentation
// benchmark's: the host knows its manifest without running it, and builds it with `go build`
// from the checkout that the tool runs in the first time one of its components runs, into
// a cache folder, recording its checksum there. A plugin of the same name installed in a
// searched folder takes its place.
type FirstParty struct {
	Name string
	// Package is its main package's import path.
	Package string
	// Manifest is what its describe prints.
	Manifest *pb.Manifest
}

// Module is goselfsup's module path: the checkout that first-party plugins are built from
// declares it in its go.mod.
const Module = "github.com/goselfsup/goselfsup"

// DefaultBuildDir is where first-party plugins built from the checkout at root go: a folder
// of the user's cache per checkout, so that two checkouts do not build over each other.
func DefaultBuildDir(root string) string {
	cache, err := os.UserCacheDir()
	if err != nil {
		cache = os.TempDir()
	}
	sum := sha256.Sum256([]byte(root))
	return filepath.Join(cache, "goselfsup", "plugins", hex.EncodeToString(sum[:6]))
}

// addFirstParty adds the first-party plugins that no searched folder holds, unbuilt.
func (h *Host) addFirstParty() {
	for i := range h.opts.FirstParty {
		fp := &h.opts.FirstParty[i]
		if _, ok := h.Found(fp.Name); ok {
			continue
		}
		h.binaries = append(h.binaries, &Binary{Name: fp.Name, Manifest: fp.Manifest, firstParty: fp})
	}
}

// buildFirstParty builds a first-party plugin from the checkout that the working directory
// is in, with the go command, and records its checksum beside it. Go's build cache makes it
// quick after the first time; it runs before every start, so the binary always matches the
// source.
func (h *Host) buildFirstParty(ctx context.Context, b *Binary) error {
	h.buildMu.Lock()
	defer h.buildMu.Unlock()
	install := fmt.Sprintf("go build -o ~/.config/goselfsup/plugins/%s%s ./%s && go run ./tools/plugin verify --write %s",
		protocol.BinaryPrefix, b.Name, strings.TrimPrefix(b.firstParty.Package, Module+"/"), b.Name)
	root, err := moduleRoot(ctx)
	if err != nil {
		return fmt.Errorf("plugin %s is built from goselfsup's source the first time it runs, but %v; run the tool in a goselfsup checkout, or install the plugin there once: %s",
			b.Name, err, install)
	}
	dir := h.opts.BuildDir
	if dir == "" {
		dir = DefaultBuildDir(root)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("plugin %s: %w", b.Name, err)
	}
	path := filepath.Join(dir, protocol.BinaryPrefix+b.Name)
	tmp := fmt.Sprintf("%s.%d.partial", path, os.Getpid())
	start := time.Now()
	h.log.Info(fmt.Sprintf("building plugin %s: go build -o %s %s", b.Name, path, b.firstParty.Package))
	cmd := exec.CommandContext(ctx, "go", "build", "-o", tmp, b.firstParty.Package)
	cmd.Dir = root
	out, err := cmd.CombinedOutput()
	if err != nil {
		os.Remove(tmp)
		return fmt.Errorf("plugin %s: go build %s in %s: %v\n%s", b.Name, b.firstParty.Package, root, err, tail(strings.TrimSpace(string(out)), 2000))
	}
	sum, err := SHA256(tmp)
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err == nil {
		err = os.WriteFile(path+ChecksumSuffix, []byte(sum+"  "+filepath.Base(path)+"\n"), 0o644)
	}
	if err != nil {
		os.Remove(tmp)
		return fmt.Errorf("plugin %s: %w", b.Name, err)
	}
	h.log.Debug("plugin built", zap.String("plugin", b.Name), zap.String("path", path), zap.Duration("took", time.Since(start)))
	b.Path, b.Dir, b.Checksum = path, dir, sum
	return nil
}

// moduleRoot returns the root of the goselfsup checkout that the working directory is in.
func moduleRoot(ctx context.Context) (string, error) {
	out, err := exec.CommandContext(ctx, "go", "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("the go command is not available (%v)", err)
	}
	gomod := strings.TrimSpace(string(out))
	if gomod == "" || gomod == os.DevNull {
		return "", errors.New("the working directory is not in a Go module")
	}
	f, err := os.Open(gomod)
	if err != nil {
		return "", err
	}
	defer f.Close()
	s := bufio.NewScanner(f)
	for s.Scan() {
		if mod, ok := strings.CutPrefix(strings.TrimSpace(s.Text()), "module "); ok {
			if mod = strings.Trim(strings.TrimSpace(mod), `"`); mod != Module {
				return "", fmt.Errorf("the working directory is in module %s (%s), not %s", mod, gomod, Module)
			}
			return filepath.Dir(gomod), nil
		}
	}
	return "", fmt.Errorf("%s declares no module", gomod)
}

// Package backend chooses the GoMLX backend a run computes with, and fills the gaps of
// GoMLX's pure-Go backend that training a CNN runs into.
package backend

import (
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/gomlx/gomlx/backends"
	"github.com/gomlx/gomlx/backends/simplego"
)

// New returns the backend named by config ("go", "go:kernels=off", "go:devices=2", "xla",
// "xla:cuda", "xla:/path/plugin.so");
// an empty config defers to $GOMLX_BACKEND, then to XLA when it is compiled in, then to the
// CPU backend. "go" is goselfsup's CPU engine (see cpuBackend): GoMLX's pure-Go backend with
// native kernels for the heavy ops; with kernels=off, the pure-Go backend alone, its gaps
// filled. devices=N (N >= 1, default 1) gives the CPU engine N virtual devices that share the
// host's memory and cores: NumDevices reports N, buffers live on any of them, and an SPMD
// program (graph.Exec.SPMD with a mesh of up to N devices) runs once per device, concurrently,
// its AllReduce a deterministic host step (see docs/cpu-engine.md); it works with kernels=off
// too. Options combine with commas ("go:devices=2,kernels=off"); others after "go:" go to
// GoMLX's pure-Go backend (parallelism=N, ...).
//
// XLA never downloads a plugin when GOMLX_NO_AUTO_INSTALL is set; without a plugin it fails
// with a message that says how to provide one.
func New(config string) (backends.Backend, error) {
	if config == "" {
		config = os.Getenv(backends.ConfigEnvVar)
	}
	if config == "" {
		if xlaCompiledIn {
			config = "xla"
		} else {
			config = simplego.BackendName
		}
	}
	name, _, _ := strings.Cut(config, ":")
	if name == simplego.BackendName {
		cfg, options, err := cpuOptions(strings.TrimPrefix(strings.TrimPrefix(config, name), ":"))
		if err != nil {
			return nil, fmt.Errorf("backend %q: %w", config, err)
		}
		b, err := newPureGo(options)
		if err != nil {
			return nil, fmt.Errorf("backend %q: %w", config, err)
		}
		return &cpuBackend{Backend: b, native: cfg.native, devices: cfg.devices, profile: new(Profile)}, nil
	}
	if !xlaCompiledIn && isXLA(name) {
		return nil, fmt.Errorf("backend %q: this binary was built without XLA (the noxla tag or no cgo); use backend \"go\"", config)
	}
	b, err := newRegistered(config)
	if err != nil {
		if isXLA(name) {
			return nil, fmt.Errorf("backend %q: %w\n%s", config, err, xlaHelp)
		}
		return nil, fmt.Errorf("backend %q: %w", config, err)
	}
	return b, nil
}

// newPureGo creates GoMLX's pure-Go backend. Unless the options set a parallelism, it is
// unlimited: with the default limit (twice the CPUs), ops that run in parallel and split
// their own work through the same worker pool (DotGeneral does) can all wait for a free
// worker at once and deadlock (GoMLX v0.26.0, seen here as a hung training step). Without a
// limit the pool starts a goroutine per task, and Go's scheduler bounds the threads; it also
// measured a little faster. GoMLX prints the parallelism it sets on stdout, which the tools
// keep for their results, so that line goes to /dev/null.
func newPureGo(options string) (backends.Backend, error) {
	if !strings.Contains(options, "parallelism=") {
		if options != "" {
			options += ","
		}
		options += "parallelism=-1"
	}
	stdout := os.Stdout
	if null, err := os.OpenFile(os.DevNull, os.O_WRONLY, 0); err == nil {
		os.Stdout = null
		defer func() { os.Stdout = stdout; null.Close() }()
	}
	return simplego.New(options)
}

const xlaHelp = `XLA needs a PJRT plugin: name one by its absolute path (backend = "xla:/path/to/pjrt_plugin.so",
or GOMLX_BACKEND=xla:/path/...), or put pjrt_c_api_<name>_plugin.so in a folder listed in
PJRT_PLUGIN_LIBRARY_PATH and use "xla:<name>". Unset GOMLX_NO_AUTO_INSTALL to let GoMLX download
one. On a CPU-only machine, use backend = "go".`

func isXLA(name string) bool {
	switch name {
	case "xla", "stablehlo", "hlo", "shlo":
		return true
	}
	return false
}

// newRegistered builds a registered GoMLX backend, turning its panics into errors.
func newRegistered(config string) (b backends.Backend, err error) {
	defer func() {
		if r := recover(); r != nil {
			b, err = nil, fmt.Errorf("%v", r)
		}
	}()
	b, err = backends.NewWithConfig(config)
	if err == nil && b == nil {
		err = errors.New("no backend returned")
	}
	return b, err
}

// IsPureGo reports whether b is the CPU backend (GoMLX's pure-Go backend under goselfsup's
// engine).
func IsPureGo(b backends.Backend) bool {
	_, ok := b.(*cpuBackend)
	return ok
}

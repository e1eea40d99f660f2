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
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/go-plugin"
	"go.uber.org/zap"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/goselfsup/goselfsup/plugins/pb"
	"github.com/goselfsup/goselfsup/plugins/protocol"
)

// Options configure a Host.
type Options struct {
	// Dirs are the folders searched, in order (nil: DefaultDirs).
	Dirs []string
	// Log receives the host's messages and the plugins' log lines (nil: none).
	Log *zap.Logger
	// StartTimeout bounds a plugin's start, up to its handshake (0: one minute).
	StartTimeout time.Duration
	// CacheDir keeps the manifests of binaries already described, by their sha256 ("": the
	// user's cache folder; "-": no cache).
	CacheDir string

	// FirstParty are the plugins of goselfsup's source tree, built on first use unless a
	// searched folder holds one of the same name.
	FirstParty []FirstParty
	// BuildDir receives the first-party plugins built ("": DefaultBuildDir of the checkout).
	BuildDir string

	// versions are the protocol versions this host speaks (tests change them).
	versions []int
}

// Host finds and runs plugins. A plugin runs, for `describe` or to serve, only when its
// binary's sha256 matches the one its checksum file records (the user's approval, written by
// `tools/plugin verify --write`); it is checked before every run.
type Host struct {
	opts     Options
	log      *zap.Logger
	binaries []*Binary
	// notLoaded are the binaries found that did not load, each with its Err.
	notLoaded []*Binary
	// Problems are the files and folders that could not be read: reported by
	// `tools/plugin list`, otherwise skipped.
	Problems []error

	mu       sync.Mutex
	sessions map[*Session]bool
	buildMu  sync.Mutex // one first-party build at a time
}

// New finds the plugins, verifies their checksums and reads their manifests (described
// once, then cached by sha256). Those not approved, changed since, or whose `describe` fails
// are not loaded (NotLoaded).
func New(opts Options) *Host {
	if opts.Dirs == nil {
		opts.Dirs = DefaultDirs()
	}
	if opts.Log == nil {
		opts.Log = zap.NewNop()
	}
	if opts.StartTimeout == 0 {
		opts.StartTimeout = time.Minute
	}
	switch opts.CacheDir {
	case "":
		if c, err := os.UserCacheDir(); err == nil {
			opts.CacheDir = filepath.Join(c, "goselfsup", "plugin-manifests")
		}
	case "-":
		opts.CacheDir = ""
	}
	if opts.versions == nil {
		opts.versions = []int{protocol.Version}
	}
	h := &Host{opts: opts, log: opts.Log, sessions: map[*Session]bool{}}
	found, errs := find(opts.Dirs)
	h.Problems = errs
	for _, b := range found {
		m, err := describe(b, opts.CacheDir)
		if err != nil {
			b.Err = err
			h.notLoaded = append(h.notLoaded, b)
			log := h.log.Debug
			if errors.Is(err, ErrChecksum) {
				log = h.log.Warn // it was approved, and changed since
			}
			log("plugin not loaded", zap.String("plugin", b.Name), zap.String("path", b.Path), zap.Error(err))
			continue
		}
		b.Manifest = m
		h.binaries = append(h.binaries, b)
	}
	h.addFirstParty()
	sort.Slice(h.binaries, func(i, j int) bool { return h.binaries[i].Name < h.binaries[j].Name })
	return h
}

// Binaries are the plugins loaded, by name.
func (h *Host) Binaries() []*Binary { return h.binaries }

// NotLoaded are the plugins found that did not load, by name, each with its Err: they were
// not run.
func (h *Host) NotLoaded() []*Binary { return h.notLoaded }

// Binary returns the loaded plugin of a name.
func (h *Host) Binary(name string) (*Binary, bool) {
	for _, b := range h.binaries {
		if b.Name == name {
			return b, true
		}
	}
	return nil, false
}

// Found returns the plugin of a name, loaded or not (then with its Err).
func (h *Host) Found(name string) (*Binary, bool) {
	if b, ok := h.Binary(name); ok {
		return b, true
	}
	for _, b := range h.notLoaded {
		if b.Name == name {
			return b, true
		}
	}
	return nil, false
}

// Close stops every plugin process still running.
func (h *Host) Close() {
	h.mu.Lock()
	sessions := make([]*Session, 0, len(h.sessions))
	for s := range h.sessions {
		sessions = append(sessions, s)
	}
	h.mu.Unlock()
	for _, s := range sessions {
		s.Close()
	}
}

// Session is a running plugin process.
type Session struct {
	Binary *Binary
	host   *Host
	client *plugin.Client
	rpc    pb.PluginClient
	cmd    *exec.Cmd
	tail   *lineTail
	// Pid is the plugin process's.
	Pid  int
	once sync.Once
}

// Start starts a plugin process and connects to it. stderrLog, when not empty, receives
// the plugin's raw standard error (its log lines, and a panic's trace). It refuses a plugin
// that did not load, and one whose binary no longer matches its checksum file: go-plugin
// hashes the binary immediately before it starts it (SecureConfig). A first-party plugin is
// built first.
func (h *Host) Start(b *Binary, stderrLog string) (_ *Session, err error) {
	if b.firstParty != nil {
		if err := h.buildFirstParty(context.Background(), b); err != nil {
			return nil, err
		}
	}
	if b.Err != nil {
		return nil, fmt.Errorf("plugin %s (%s) did not load, and is not run: %w", b.Name, b.Path, b.Err)
	}
	if b.Checksum == "" {
		return nil, fmt.Errorf("plugin %s (%s): %w; approve it with `%s` once you trust it", b.Name, b.Path, ErrUntrusted, b.ApproveCommand())
	}
	sum, err := hex.DecodeString(b.Checksum)
	if err != nil || len(sum) != sha256.Size {
		return nil, fmt.Errorf("plugin %s: %s%s does not hold a sha256", b.Name, b.Path, ChecksumSuffix)
	}
	secure := &plugin.SecureConfig{Checksum: sum, Hash: sha256.New()}
	s := &Session{Binary: b, host: h, tail: newLineTail(20)}
	var stderr io.Writer = s.tail
	if stderrLog != "" {
		if err := os.MkdirAll(filepath.Dir(stderrLog), 0o755); err != nil {
			return nil, err
		}
		f, err := os.OpenFile(stderrLog, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
		if err != nil {
			return nil, err
		}
		defer func() {
			if err != nil {
				f.Close()
			}
		}()
		stderr = io.MultiWriter(s.tail, f)
	}
	s.cmd = exec.Command(b.Path)
	setParentDeathSignal(s.cmd)
	start := time.Now()
	s.client = plugin.NewClient(&plugin.ClientConfig{
		HandshakeConfig:  protocol.Handshake,
		VersionedPlugins: protocol.Sets(nil, h.opts.versions...),
		Cmd:              s.cmd,
		SecureConfig:     secure,
		AllowedProtocols: []plugin.Protocol{plugin.ProtocolGRPC},
		AutoMTLS:         true,
		StartTimeout:     h.opts.StartTimeout,
		Stderr:           stderr,
		Logger:           hclogToZap(h.log.Named("plugin."+b.Name), "plugin."+b.Name),
	})
	defer func() {
		if err != nil {
			s.client.Kill()
		}
	}()
	conn, err := s.client.Client()
	if err != nil {
		return nil, s.startError(err)
	}
	raw, err := conn.Dispense(protocol.PluginKey)
	if err != nil {
		return nil, fmt.Errorf("plugin %s: %w", b.Name, err)
	}
	s.rpc = raw.(pb.PluginClient)
	if rc := s.client.ReattachConfig(); rc != nil {
		s.Pid = rc.Pid
	}
	h.mu.Lock()
	h.sessions[s] = true
	h.mu.Unlock()
	h.log.Debug("plugin started", zap.String("plugin", b.Name), zap.Int("pid", s.Pid), zap.Duration("took", time.Since(start)))
	return s, nil
}

// startError explains why a plugin did not start.
func (s *Session) startError(err error) error {
	b := s.Binary
	msg := err.Error()
	switch {
	case errors.Is(err, plugin.ErrChecksumsDoNotMatch):
		return fmt.Errorf("plugin %s: %w: %s does not match its checksum file %s; refusing to run it (reinstall the plugin, or approve it as it is now with `%s` if you trust it)",
			b.Name, ErrChecksum, b.Path, filepath.Base(b.Path)+ChecksumSuffix, b.ApproveCommand())
	case strings.Contains(strings.ToLower(msg), "incompatible api version"):
		return fmt.Errorf("plugin %s: protocol version mismatch: goselfsup speaks plugin protocol %v and %s does not (%s); rebuild the plugin with a goselfsup SDK of the same protocol",
			b.Name, s.host.opts.versions, b.Path, msg)
	case strings.Contains(msg, "timeout while waiting for plugin to start"):
		return fmt.Errorf("plugin %s: %s did not start within %s (no handshake on its standard output)%s",
			b.Name, b.Path, s.host.opts.StartTimeout, s.tail.excerpt())
	}
	return fmt.Errorf("plugin %s: starting %s: %w%s", b.Name, b.Path, err, s.tail.excerpt())
}

// Info asks the plugin for its manifest.
func (s *Session) Info(ctx context.Context) (*pb.Manifest, error) {
	m, err := s.rpc.Info(ctx, &pb.InfoRequest{})
	if err != nil {
		return nil, s.callError("info", err)
	}
	return m, nil
}

// Evaluate runs a component and hands every event to on, until the plugin reports it done.
// Cancelling ctx stops the plugin's run.
func (s *Session) Evaluate(ctx context.Context, req *pb.EvaluateRequest, on func(*pb.Event)) error {
	stream, err := s.rpc.Evaluate(ctx, req)
	if err != nil {
		return s.callError(req.Component, err)
	}
	for {
		e, err := stream.Recv()
		if err == io.EOF {
			return fmt.Errorf("plugin %s: %s ended without reporting it was done", s.Binary.Name, req.Component)
		}
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			return s.callError(req.Component, err)
		}
		if _, done := e.Kind.(*pb.Event_Done); done {
			return nil
		}
		on(e)
	}
}

// callError explains a failed call: the component's own error, or the process's end.
func (s *Session) callError(what string, err error) error {
	st, _ := status.FromError(err)
	if st.Code() == codes.Unknown || st.Code() == codes.NotFound || st.Code() == codes.Internal {
		if !s.exited(100 * time.Millisecond) {
			return fmt.Errorf("plugin %s: %s: %s", s.Binary.Name, what, st.Message())
		}
	}
	if s.exited(3 * time.Second) {
		state := "exited"
		if ps := s.cmd.ProcessState; ps != nil {
			state = ps.String()
		}
		return fmt.Errorf("plugin %s (%s, pid %d) died during %s: %s%s", s.Binary.Name, s.Binary.Path, s.Pid, what, state, s.tail.excerpt())
	}
	return fmt.Errorf("plugin %s: %s: %w%s", s.Binary.Name, what, err, s.tail.excerpt())
}

// exited waits up to d for the process to end and reports whether it has.
func (s *Session) exited(d time.Duration) bool {
	deadline := time.Now().Add(d)
	for {
		if s.client.Exited() {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Close stops the plugin process: a graceful shutdown, then a kill after two seconds.
func (s *Session) Close() {
	s.once.Do(func() {
		s.client.Kill()
		s.host.mu.Lock()
		delete(s.host.sessions, s)
		s.host.mu.Unlock()
	})
}

// lineTail keeps the last lines written to it.
type lineTail struct {
	mu      sync.Mutex
	max     int
	lines   []string
	partial string
}

func newLineTail(n int) *lineTail { return &lineTail{max: n} }

func (t *lineTail) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	text := t.partial + string(p)
	parts := strings.Split(text, "\n")
	t.partial = parts[len(parts)-1]
	for _, l := range parts[:len(parts)-1] {
		if l = strings.TrimRight(l, "\r"); l != "" {
			t.lines = append(t.lines, readable(l))
		}
	}
	if len(t.lines) > t.max {
		t.lines = t.lines[len(t.lines)-t.max:]
	}
	return len(p), nil
}

// readable turns a JSON log line (hclog's keys) into "level: message key=value".
func readable(line string) string {
	var m map[string]any
	if json.Unmarshal([]byte(line), &m) != nil {
		return line
	}
	lvl, _ := m["@level"].(string)
	msg, _ := m["@message"].(string)
	out := strings.ToUpper(lvl) + " " + msg
	keys := make([]string, 0, len(m))
	for k := range m {
		if !strings.HasPrefix(k, "@") {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	for _, k := range keys {
		out += fmt.Sprintf(" %s=%v", k, m[k])
	}
	return out
}

// excerpt formats the last lines for an error message.
func (t *lineTail) excerpt() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	lines := t.lines
	if t.partial != "" {
		lines = append(lines[:len(lines):len(lines)], t.partial)
	}
	if len(lines) == 0 {
		return "; it wrote nothing on its standard error"
	}
	return "; its last log lines:\n    " + strings.Join(lines, "\n    ")
}

// hclogToZap gives go-plugin a logger whose entries (the plugin's log lines, which
// go-plugin parses with their levels, and its own messages) go to z.
func hclogToZap(z *zap.Logger, name string) hclog.Logger {
	il := hclog.NewInterceptLogger(&hclog.LoggerOptions{Name: name, Level: hclog.Debug, Output: io.Discard})
	il.RegisterSink(zapSink{z: z})
	return il
}

type zapSink struct{ z *zap.Logger }

func (s zapSink) Accept(_ string, level hclog.Level, msg string, args ...any) {
	fields := make([]zap.Field, 0, len(args)/2)
	for i := 0; i+1 < len(args); i += 2 {
		if k := fmt.Sprint(args[i]); k != "timestamp" { // the host's log has its own
			fields = append(fields, zap.Any(k, args[i+1]))
		}
	}
	switch {
	case level <= hclog.Debug:
		s.z.Debug(msg, fields...)
	case level == hclog.Info:
		s.z.Info(msg, fields...)
	case level == hclog.Warn:
		s.z.Warn(msg, fields...)
	default:
		s.z.Error(msg, fields...)
	}
}

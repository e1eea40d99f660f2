// Package sdk is what a goselfsup plugin is written with. A plugin is a program named
// goselfsup-plugin-<name> whose main calls Serve with its components:
//
//	type config struct {
//		Feature string `toml:"feature" doc:"the feature to probe"`
//		Epochs  int    `toml:"epochs" doc:"passes over the data"`
//	}
//
//	func main() {
//		sdk.Serve(sdk.Plugin{
//			Name: "logreg", Version: "1.0.0",
//			Components: []sdk.Component{{
//				Type:   "LogisticRegressionProbe",
//				Doc:    "a logistic-regression probe on extracted features",
//				Config: func() any { return &config{Feature: "backbone", Epochs: 100} },
//				Run:    probe, // var c config; r.Decode(&c): the defaults, then the table
//			}},
//		})
//	}
//
// The component's config keys, their types, docs and defaults, which the host checks a
// config's table against, come from the struct that Config returns (see Component.Keys).
// goselfsup starts the program when a config names one of its components
// (val_evaluator = { type = "LogisticRegressionProbe", epochs = 50 }), calls the component's
// Run with the config table, the checkpoint and the input paths, and receives what Run
// reports: progress, metrics, artefacts, and log lines written with Run.Log. The program
// prints its manifest with `goselfsup-plugin-<name> describe`, and exits by itself when
// the goselfsup process that started it dies.
//
// Nothing may write to standard output before Serve: go-plugin's handshake line goes there.
package sdk

import (
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"reflect"
	"regexp"
	"runtime/debug"
	"sync"
	"time"

	"github.com/BurntSushi/toml"
	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/go-plugin"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"

	"github.com/goselfsup/goselfsup/plugins/pb"
	"github.com/goselfsup/goselfsup/plugins/protocol"
)

// Version is the SDK's version, reported in the manifest.
const Version = "1.0.0"

// Plugin describes a plugin program.
type Plugin struct {
	// Name is the plugin's name: its binary is goselfsup-plugin-<Name>.
	Name string
	// Version is the plugin's own version.
	Version    string
	Components []Component
}

// Component is one evaluator or benchmark a plugin offers.
type Component struct {
	// Type is what a config's type = "..." names; it must not clash with goselfsup's own
	// components or another plugin's.
	Type string
	Doc  string
	// Namespace says what the component is: "evaluators" (the default) evaluates the
	// features that goselfsup extracts (Run.Inputs["features_dir"]), as a config's
	// val_evaluator; "benchmarks" is a downstream benchmark that is a whole run of its own,
	// as a config's benchmark key: it receives the merged config (Inputs["config"]), the
	// folder its relative paths resolve against (Inputs["base_dir"]) and, to continue an
	// interrupted run, Inputs["resume"] ("auto" or a checkpoint), besides the checkpoint
	// and the work_dir.
	Namespace string
	// Config returns a new pointer to the component's config struct, holding its defaults.
	// The keys of its config table (their names, types, docs, defaults, and which are
	// required) are derived from the struct's fields and tags: see Keys. The host refuses
	// other keys. Nil: the component takes no keys.
	Config func() any
	// Run evaluates. It should return when ctx is cancelled (the host stops the run).
	Run func(ctx context.Context, r *Run) error
}

// Run is one evaluation: its request, and the means to report.
type Run struct {
	// Component is the component's type.
	Component string
	// Checkpoint is the model's checkpoint (empty at random initialisation).
	Checkpoint string
	// WorkDir is where the run may write files.
	WorkDir string
	// Inputs are named paths: "features_dir" holds tools/extract's .npy files (an
	// evaluator's); "config", "base_dir" and "resume" are a benchmark's (see
	// Component.Namespace).
	Inputs map[string]string
	// Log writes log lines that the host shows with their level.
	Log *zap.Logger

	config   string
	defaults func() any // the component's Config
	mu       sync.Mutex
	send     func(*pb.Event) error
}

// Decode decodes the component's config table into dst, a pointer to a struct with toml
// tags. When dst is of the type the component's Config returns, it first receives Config's
// defaults, and the table's keys are decoded over them; otherwise it keeps what it holds
// where the table has no key.
func (r *Run) Decode(dst any) error {
	if r.defaults != nil {
		if def, to := reflect.ValueOf(r.defaults()), reflect.ValueOf(dst); def.Type() == to.Type() && to.Kind() == reflect.Pointer && !to.IsNil() {
			to.Elem().Set(def.Elem())
		}
	}
	md, err := toml.Decode(r.config, dst)
	if err != nil {
		return fmt.Errorf("%s config: %w", r.Component, err)
	}
	if u := md.Undecoded(); len(u) > 0 {
		return fmt.Errorf("%s config: keys %v have no field", r.Component, u)
	}
	return nil
}

func (r *Run) emit(e *pb.Event) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.send(e)
}

// Progress reports that done of total steps of stage are complete.
func (r *Run) Progress(stage string, done, total int) error {
	return r.emit(&pb.Event{Kind: &pb.Event_Progress{Progress: &pb.Progress{Stage: stage, Done: int64(done), Total: int64(total)}}})
}

// Metric reports a result.
func (r *Run) Metric(name string, value float64) error {
	return r.emit(&pb.Event{Kind: &pb.Event_Metric{Metric: &pb.Metric{Name: name, Value: value}}})
}

// Artifact reports a file the run wrote, with its sha256.
func (r *Run) Artifact(name, path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return err
	}
	return r.emit(&pb.Event{Kind: &pb.Event_Artifact{Artifact: &pb.Artifact{Name: name, Path: path, Sha256: hex.EncodeToString(h.Sum(nil))}}})
}

var typeName = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9_]*$`)
var pluginName = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]*$`)

// check reports what is wrong with a plugin's description.
func (p *Plugin) check() error {
	var errs []error
	if !pluginName.MatchString(p.Name) {
		errs = append(errs, fmt.Errorf("plugin name %q: use lower-case letters, digits, - and _", p.Name))
	}
	if len(p.Components) == 0 {
		errs = append(errs, errors.New("the plugin has no components"))
	}
	seen := map[string]bool{}
	for _, c := range p.Components {
		if !typeName.MatchString(c.Type) {
			errs = append(errs, fmt.Errorf("component type %q: use letters, digits and _", c.Type))
		}
		if c.Namespace != "" && c.Namespace != protocol.NamespaceEvaluators && c.Namespace != protocol.NamespaceBenchmarks {
			errs = append(errs, fmt.Errorf("component %s: namespace %q: use %q or %q", c.Type, c.Namespace, protocol.NamespaceEvaluators, protocol.NamespaceBenchmarks))
		}
		if seen[c.Type] {
			errs = append(errs, fmt.Errorf("component %s twice", c.Type))
		}
		seen[c.Type] = true
		if c.Run == nil {
			errs = append(errs, fmt.Errorf("component %s has no Run", c.Type))
		}
		if _, err := c.Keys(); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// Manifest returns the plugin's manifest, as `describe` prints it and Info returns it.
func (p *Plugin) Manifest() *pb.Manifest {
	m := &pb.Manifest{Name: p.Name, Version: p.Version, ProtocolVersion: protocol.Version, SdkVersion: Version}
	for _, c := range p.Components {
		pc := &pb.Component{Namespace: cmp.Or(c.Namespace, protocol.NamespaceEvaluators), Type: c.Type, Doc: c.Doc}
		keys, _ := c.Keys() // check reported errors
		for _, k := range keys {
			pc.Keys = append(pc.Keys, &pb.ConfigKey{Name: k.Name, Type: k.Type, Doc: k.Doc, Default: k.Default, Required: k.Required})
		}
		m.Components = append(m.Components, pc)
	}
	return m
}

// Serve runs the plugin and does not return: with the argument "describe" it prints the
// manifest as JSON; started by goselfsup, it serves until goselfsup stops it or dies.
func Serve(p Plugin) {
	log := newLogger(os.Stderr)
	if err := p.check(); err != nil {
		log.Error("invalid plugin", zap.Error(err))
		os.Exit(2)
	}
	if len(os.Args) > 1 && os.Args[1] == "describe" {
		data, err := protojson.MarshalOptions{Multiline: true, UseProtoNames: true}.Marshal(p.Manifest())
		if err != nil {
			log.Error("manifest", zap.Error(err))
			os.Exit(1)
		}
		fmt.Println(string(data))
		os.Exit(0)
	}
	if os.Getenv(protocol.Handshake.MagicCookieKey) == "" {
		fmt.Fprintf(os.Stderr, "goselfsup-plugin-%s is a goselfsup plugin: goselfsup starts it when a config names one of its components.\n"+
			"Install it in a folder of $GOSELFSUP_PLUGIN_PATH or ~/.config/goselfsup/plugins (or one given to --plugin-dir),\n"+
			"then approve it with `tools/plugin verify --write %s`; `goselfsup-plugin-%s describe` prints what it offers.\n", p.Name, p.Name, p.Name)
		os.Exit(1)
	}
	go exitWithParent(log, os.Getppid(), time.Second)
	plugin.Serve(&plugin.ServeConfig{
		HandshakeConfig:  protocol.Handshake,
		VersionedPlugins: protocol.Sets(&server{p: &p, log: log}, protocol.Version),
		GRPCServer:       protocol.NewGRPCServer,
		Logger: hclog.New(&hclog.LoggerOptions{Name: p.Name, Output: os.Stderr, JSONFormat: true,
			Level: hclog.Info}),
	})
	os.Exit(0)
}

// newLogger writes JSON lines with hclog's keys on w (the plugin's real stderr), which
// go-plugin reads on the host's side and re-logs with their levels.
func newLogger(w io.Writer) *zap.Logger {
	enc := zapcore.EncoderConfig{
		MessageKey: "@message", LevelKey: "@level", TimeKey: "@timestamp",
		EncodeLevel:    zapcore.LowercaseLevelEncoder,
		EncodeTime:     zapcore.TimeEncoderOfLayout("2006-01-02T15:04:05.000000Z07:00"),
		EncodeDuration: zapcore.StringDurationEncoder,
	}
	return zap.New(zapcore.NewCore(zapcore.NewJSONEncoder(enc), zapcore.Lock(zapcore.AddSync(w)), zap.DebugLevel))
}

// exitWithParent ends the process when its parent (the host) is gone: orphans are
// re-parented, so the parent pid changes. The host also asks Linux to kill its plugins when
// it dies; this covers the other systems and a host that could not.
func exitWithParent(log *zap.Logger, ppid int, every time.Duration) {
	for range time.Tick(every) {
		if os.Getppid() != ppid {
			log.Error("the goselfsup process that started this plugin is gone; exiting", zap.Int("host_pid", ppid))
			os.Exit(3)
		}
	}
}

// server implements the Plugin service.
type server struct {
	pb.UnimplementedPluginServer
	p   *Plugin
	log *zap.Logger
}

func (s *server) Info(context.Context, *pb.InfoRequest) (*pb.Manifest, error) {
	return s.p.Manifest(), nil
}

func (s *server) Evaluate(req *pb.EvaluateRequest, stream pb.Plugin_EvaluateServer) (err error) {
	var comp *Component
	for i := range s.p.Components {
		if s.p.Components[i].Type == req.Component {
			comp = &s.p.Components[i]
		}
	}
	if comp == nil {
		return status.Errorf(codes.NotFound, "plugin %s has no component %q", s.p.Name, req.Component)
	}
	log := s.log.With(zap.String("component", comp.Type))
	r := &Run{Component: comp.Type, Checkpoint: req.Checkpoint, WorkDir: req.WorkDir, Inputs: req.Inputs,
		Log: log, config: req.ConfigToml, defaults: comp.Config, send: stream.Send}
	defer func() {
		if p := recover(); p != nil {
			log.Error("panic", zap.Any("panic", p), zap.ByteString("stack", debug.Stack()))
			err = status.Errorf(codes.Internal, "%s panicked: %v", comp.Type, p)
		}
	}()
	if err := comp.Run(stream.Context(), r); err != nil {
		if stream.Context().Err() != nil {
			return status.FromContextError(stream.Context().Err()).Err()
		}
		return status.Error(codes.Unknown, err.Error())
	}
	return r.emit(&pb.Event{Kind: &pb.Event_Done{Done: &pb.Done{}}})
}

package host

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"path/filepath"
	"slices"
	"sort"
	"strings"

	"github.com/BurntSushi/toml"
	"go.uber.org/zap"

	"github.com/goselfsup/goselfsup/plugins/pb"
	"github.com/goselfsup/goselfsup/registry"
)

// Extend returns a registry with base's components and those of every plugin loaded, so
// that a config's type = "X" resolves to a built-in component or a plugin's alike. A plugin
// component that clashes with another component is left out, and reported in the error
// (the registry is still usable). The plugins that did not load, and the components left
// out, are noted on the registry (registry.NoteUnavailable): a config that names an unknown
// type is told about them, and why.
func (h *Host) Extend(base *registry.Registry) (*registry.Registry, error) {
	reg := base.Extend()
	for _, b := range h.notLoaded {
		reg.NoteUnavailable("plugin "+b.Name, b.Err.Error())
	}
	var errs []error
	for _, b := range h.binaries {
		for _, c := range b.Manifest.Components {
			comp := c
			bin := b
			err := reg.TryRegister(registry.Component{
				Namespace: comp.Namespace, Type: comp.Type,
				Doc: fmt.Sprintf("%s (plugin %s %s)", comp.Doc, bin.Name, bin.Manifest.Version),
				New: func() any { return &PluginComponent{Host: h, Binary: bin, Spec: comp} },
			})
			if err != nil {
				errs = append(errs, fmt.Errorf("plugin %s (%s): component %s.%s not added: %w", b.Name, b.Path, comp.Namespace, comp.Type, err))
				reg.NoteUnavailable("plugin "+b.Name, fmt.Sprintf("its component %s.%s was left out: %v", comp.Namespace, comp.Type, err))
			}
		}
	}
	return reg, errors.Join(errs...)
}

// PluginComponent is the config of a plugin's component: its table, checked against the
// keys the plugin documents, and the means to run it.
type PluginComponent struct {
	Host   *Host
	Binary *Binary
	Spec   *pb.Component
	// Table is the config table, without "type".
	Table map[string]any
}

// DescribeKeys gives the keys that the plugin's manifest documents, for print_config
// --describe.
func (c *PluginComponent) DescribeKeys() []registry.Key {
	keys := make([]registry.Key, len(c.Spec.Keys))
	for i, k := range c.Spec.Keys {
		keys[i] = registry.Key{Name: k.Name, Type: k.Type, Default: k.Default, Doc: k.Doc, Required: k.Required}
	}
	return keys
}

// DecodeTable checks the table's keys and value types against the plugin's manifest.
func (c *PluginComponent) DecodeTable(t map[string]any) error {
	var errs []error
	known := map[string]*pb.ConfigKey{}
	var names []string
	for _, k := range c.Spec.Keys {
		known[k.Name] = k
		names = append(names, k.Name)
	}
	sort.Strings(names)
	for _, k := range slices.Sorted(maps.Keys(t)) {
		spec, ok := known[k]
		if !ok {
			errs = append(errs, registry.FieldErrorf(k, "unknown key for %s (plugin %s); its keys: %s", c.Spec.Type, c.Binary.Name, strings.Join(names, ", ")))
			continue
		}
		if !typeMatches(spec.Type, t[k]) {
			errs = append(errs, registry.FieldErrorf(k, "must be a %s for %s (plugin %s), got %v", spec.Type, c.Spec.Type, c.Binary.Name, t[k]))
		}
	}
	for _, n := range names {
		if _, ok := t[n]; !ok && known[n].Required {
			errs = append(errs, registry.FieldErrorf(n, "is required by %s (plugin %s): %s", c.Spec.Type, c.Binary.Name, known[n].Doc))
		}
	}
	c.Table = t
	return errors.Join(errs...)
}

func typeMatches(typ string, v any) bool {
	switch typ {
	case "string":
		_, ok := v.(string)
		return ok
	case "int":
		_, ok := v.(int64)
		return ok
	case "float":
		switch v.(type) {
		case float64, int64:
			return true
		}
		return false
	case "bool":
		_, ok := v.(bool)
		return ok
	case "array":
		_, ok := v.([]any)
		return ok
	case "table":
		_, ok := v.(map[string]any)
		return ok
	}
	return true // an undocumented type: the plugin checks
}

// Request is what a plugin's component runs on.
type Request struct {
	Checkpoint string
	WorkDir    string
	Inputs     map[string]string
}

// Result is what a run reported.
type Result struct {
	Metrics   map[string]float64
	Artifacts []*pb.Artifact
}

// Run starts the plugin, runs the component, stops the plugin, and returns what it
// reported. Progress goes to progress (if not nil), the plugin's log lines to the host's
// log, and its raw standard error to <work_dir>/plugins/<name>.stderr.log.
func (c *PluginComponent) Run(ctx context.Context, req Request, progress func(stage string, done, total int64)) (*Result, error) {
	var buf strings.Builder
	if err := toml.NewEncoder(&buf).Encode(c.Table); err != nil {
		return nil, fmt.Errorf("%s: encoding its config: %w", c.Spec.Type, err)
	}
	stderrLog := ""
	if req.WorkDir != "" {
		stderrLog = filepath.Join(req.WorkDir, "plugins", c.Binary.Name+".stderr.log")
	}
	s, err := c.Host.Start(c.Binary, stderrLog)
	if err != nil {
		return nil, err
	}
	defer s.Close()
	res := &Result{Metrics: map[string]float64{}}
	log := c.Host.log.Named("plugin." + c.Binary.Name)
	err = s.Evaluate(ctx, &pb.EvaluateRequest{Component: c.Spec.Type, ConfigToml: buf.String(), Checkpoint: req.Checkpoint,
		WorkDir: req.WorkDir, Inputs: req.Inputs}, func(e *pb.Event) {
		switch k := e.Kind.(type) {
		case *pb.Event_Progress:
			if progress != nil {
				progress(k.Progress.Stage, k.Progress.Done, k.Progress.Total)
			}
		case *pb.Event_Metric:
			res.Metrics[k.Metric.Name] = k.Metric.Value
		case *pb.Event_Artifact:
			res.Artifacts = append(res.Artifacts, k.Artifact)
		case *pb.Event_Log:
			fields := make([]zap.Field, 0, len(k.Log.Fields))
			for key, v := range k.Log.Fields {
				fields = append(fields, zap.String(key, v))
			}
			switch k.Log.Level {
			case "debug", "trace":
				log.Debug(k.Log.Message, fields...)
			case "warn", "warning":
				log.Warn(k.Log.Message, fields...)
			case "error":
				log.Error(k.Log.Message, fields...)
			default:
				log.Info(k.Log.Message, fields...)
			}
		}
	})
	if err != nil {
		return nil, err
	}
	return res, nil
}

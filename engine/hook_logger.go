package engine

import (
	"fmt"

	"go.uber.org/zap"

	"github.com/goselfsup/goselfsup/registry"
)

func init() {
	registry.Add(registry.Hooks, "LoggerHook", "log loss, learning rate, timings and ETA every interval iterations",
		func() *LoggerHookConfig { return &LoggerHookConfig{Interval: 10, IgnoreLast: true} })
}

// LoggerHookConfig is mmengine's LoggerHook: every interval iterations, the loss, times and
// data times averaged over log_processor.window_size iterations, the learning rate and the
// ETA, on the console, in log.jsonl and in vis_data/scalars.json.
type LoggerHookConfig struct {
	Interval   int  `toml:"interval" doc:"log every interval iterations"`
	IgnoreLast bool `toml:"ignore_last" doc:"skip the last iterations of an epoch that make no full interval"`
}

func (c *LoggerHookConfig) Validate() error {
	if c.Interval < 1 {
		return registry.FieldErrorf("interval", "must be at least 1, got %d", c.Interval)
	}
	return nil
}

func (c *LoggerHookConfig) Build(*registry.Env) (any, error) {
	h := &loggerHook{LoggerHookConfig: *c}
	return &Hook{Name: "LoggerHook", Priority: PriorityBelowNormal, AfterTrainIter: h.afterTrainIter}, nil
}

type loggerHook struct {
	LoggerHookConfig
	history []IterInfo // this run's iterations, for the windows of log_processor
	epochAt int        // where the current epoch's iterations start in history
}

// loggedValue reads one of the values the logger logs from an iteration.
var loggedValue = map[string]func(it IterInfo) float64{
	"loss":      func(it IterInfo) float64 { return it.Loss },
	"lr":        func(it IterInfo) float64 { return it.LR },
	"time":      func(it IterInfo) float64 { return it.Time.Seconds() },
	"data_time": func(it IterInfo) float64 { return it.Data.Seconds() },
}

func (h *loggerHook) afterTrainIter(r *Runner, it IterInfo) error {
	if len(h.history) > 0 && h.history[len(h.history)-1].Epoch != it.Epoch {
		h.epochAt = len(h.history)
	}
	h.history = append(h.history, it)
	h.trim(r.Cfg.LogProcessor)
	iterBased := r.Loop.IterBased()
	var due bool
	if iterBased {
		due = r.Iter%h.Interval == 0 || r.Iter == r.MaxIters
	} else {
		last := it.Iter == it.ItersPerEpoch-1
		due = (it.Iter+1)%h.Interval == 0 || (last && !h.IgnoreLast)
	}
	if !due {
		return nil
	}
	// mmengine's LogProcessor: loss, time and data_time are means over window_size
	// iterations, lr the current value; custom_cfg changes a value's statistic or window,
	// or adds one under log_name.
	window := max(r.Cfg.LogProcessor.WindowSize, 1)
	values := map[string]float64{
		"lr":        it.LR,
		"time":      h.statistic("time", "mean", WindowSize{Iters: window}),
		"data_time": h.statistic("data_time", "mean", WindowSize{Iters: window}),
		"loss":      h.statistic("loss", "mean", WindowSize{Iters: window}),
	}
	order := []string{"lr", "time", "data_time", "loss"}
	for _, c := range r.Cfg.LogProcessor.CustomCfg {
		if _, ok := loggedValue[c.DataSrc]; !ok {
			continue // as mmengine, which applies an entry only to a value it logs
		}
		name := c.LogName
		if name == "" {
			name = c.DataSrc
		}
		if _, ok := values[name]; !ok {
			order = append(order, name)
		}
		values[name] = h.statistic(c.DataSrc, c.Method, c.WindowSize)
	}
	msg := fmt.Sprintf("Epoch(train) [%d][%d/%d]", it.Epoch+1, it.Iter+1, it.ItersPerEpoch)
	if iterBased {
		msg = fmt.Sprintf("Iter(train) [%d/%d]", r.Iter, r.MaxIters)
	}
	fields := []zap.Field{zap.Int("epoch", it.Epoch+1), zap.Int("iter", r.Iter), zap.Float64("lr", values["lr"]),
		zap.Duration("eta", r.ETA())}
	for _, k := range order[1:] {
		fields = append(fields, zap.Float64(k, values[k]))
	}
	r.Log.Info(msg, fields...)
	r.LogScalars(values)
	return nil
}

// trim drops the iterations that no window of lp reaches any more.
func (h *loggerHook) trim(lp LogProcessor) {
	keep := max(lp.WindowSize, 1)
	for _, c := range lp.CustomCfg {
		switch {
		case c.WindowSize.Named == "global":
			return
		case c.WindowSize.Named == "epoch":
			keep = max(keep, len(h.history)-h.epochAt)
		default:
			keep = max(keep, c.WindowSize.Iters)
		}
	}
	if drop := len(h.history) - keep; drop > 0 {
		h.history = append(h.history[:0], h.history[drop:]...)
		h.epochAt = max(h.epochAt-drop, 0)
	}
}

// statistic is method (mean, min, max, current) of a logged value over a window of this
// run's iterations: the last N, the current epoch's, or all ("global").
func (h *loggerHook) statistic(src, method string, w WindowSize) float64 {
	its := h.history
	switch {
	case w.Named == "epoch":
		its = its[h.epochAt:]
	case w.Named == "global":
	case w.Iters > 0 && len(its) > w.Iters:
		its = its[len(its)-w.Iters:]
	}
	get := loggedValue[src]
	switch method {
	case "current":
		return get(its[len(its)-1])
	case "min", "max":
		v := get(its[0])
		for _, it := range its[1:] {
			if method == "min" {
				v = min(v, get(it))
			} else {
				v = max(v, get(it))
			}
		}
		return v
	}
	sum := 0.0
	for _, it := range its {
		sum += get(it)
	}
	return sum / float64(len(its))
}

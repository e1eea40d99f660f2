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
	window []IterInfo
}

func (h *loggerHook) afterTrainIter(r *Runner, it IterInfo) error {
	size := max(r.Cfg.LogProcessor.WindowSize, 1)
	h.window = append(h.window, it)
	if len(h.window) > size {
		h.window = h.window[1:]
	}
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
	var loss, secs, data float64
	for _, w := range h.window {
		loss += w.Loss
		secs += w.Time.Seconds()
		data += w.Data.Seconds()
	}
	n := float64(len(h.window))
	msg := fmt.Sprintf("Epoch(train) [%d][%d/%d]", it.Epoch+1, it.Iter+1, it.ItersPerEpoch)
	if iterBased {
		msg = fmt.Sprintf("Iter(train) [%d/%d]", r.Iter, r.MaxIters)
	}
	values := map[string]float64{"lr": it.LR, "time": secs / n, "data_time": data / n, "loss": loss / n}
	r.Log.Info(msg, zap.Int("epoch", it.Epoch+1), zap.Int("iter", r.Iter),
		zap.Float64("lr", it.LR), zap.Duration("eta", r.ETA()), zap.Float64("time", secs/n),
		zap.Float64("data_time", data/n), zap.Float64("loss", loss/n))
	r.LogScalars(values)
	return nil
}

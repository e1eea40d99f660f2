package engine

import (
	"errors"
	"math"

	"github.com/goselfsup/goselfsup/registry"
)

func init() {
	registry.Add(registry.ParamSchedulers, "PolyLR", "polynomial decay of the learning rate to eta_min (mmseg's poly schedule)",
		func() *PolyLRConfig { return &PolyLRConfig{schedulerWindow: defaultWindow(), Power: 1} })
}

// PolyLRConfig is mmengine's PolyLR: over the window [begin, end) the learning rate decays
// from the base rate to eta_min as (1 - t/T)^power, T = end - begin - 1 steps (mmengine's
// PolyParamScheduler.total_iters), so that the window's last step has eta_min.
//
// mmengine computes it recursively, once per step t = 1..T of the window:
//
//	lr_t = (lr_{t-1} - eta_min) * (1 - 1/(T - t + 1))^power + eta_min
//
// and (T-t)/(T-t+1) telescopes, so lr_t = (base - eta_min) * (1 - t/T)^power + eta_min,
// the closed form Scale computes. The two agree to rounding (TestPolyLRIsMMEngineRecursion).
// mmseg 1.x's schedule_20k (end = 20000) thus decays over 19,999 steps, where 0.x's
// PolyLrUpdaterHook used (1 - it/20000)^0.9. Past the window the rate stays eta_min.
type PolyLRConfig struct {
	schedulerWindow
	EtaMin float64 `toml:"eta_min" doc:"the final learning rate"`
	Power  float64 `toml:"power" doc:"the power of the polynomial"`
}

func (c *PolyLRConfig) Validate() error {
	var errs []error
	if c.Power <= 0 {
		errs = append(errs, registry.FieldErrorf("power", "must be positive, got %g", c.Power))
	}
	if c.EtaMin < 0 {
		errs = append(errs, registry.FieldErrorf("eta_min", "must not be negative, got %g", c.EtaMin))
	}
	if c.End == math.MaxInt32 {
		errs = append(errs, registry.FieldErrorf("end", "is required: the decay lasts from begin to end"))
	}
	return errors.Join(append(errs, c.validate())...)
}

func (c *PolyLRConfig) Build(*registry.Env) (any, error) { return &polyLR{*c}, nil }

type polyLR struct{ PolyLRConfig }

// Scale decays lr, the rate the schedulers before it gave, as a factor of the base rate:
// alone, it gives (base - eta_min) * (1 - t/T)^power + eta_min exactly as written.
func (s *polyLR) Scale(lr float64, at Position) float64 {
	pos, started := s.place(at)
	if !started {
		return lr
	}
	step := 1.0 // the window's steps, in its units
	if s.ByEpoch && s.ConvertToIterBased {
		step = 1 / float64(at.ItersPerEpoch)
	}
	t, T := pos-float64(s.Begin), math.Max(s.length()-step, step)
	decay := math.Pow(1-math.Min(t, T)/T, s.Power)
	if lr == at.BaseLR {
		return (lr-s.EtaMin)*decay + s.EtaMin
	}
	min := s.EtaMin / at.BaseLR
	return lr * (min + (1-min)*decay)
}

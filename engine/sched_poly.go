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

// PolyLRConfig is mmengine's PolyLR: the learning rate decays from the base rate to eta_min
// as (1 - t/T)^power over the window [begin, end), T = end - begin.
//
// mmengine computes it recursively, once per step t = 1..T-1 of the window:
//
//	lr_t = (lr_{t-1} - eta_min) * (1 - 1/(T - t + 1))^power + eta_min
//
// and (T-t)/(T-t+1) telescopes, so lr_t = (base - eta_min) * (1 - t/T)^power + eta_min,
// the closed form Scale computes (mmseg's schedule_20k: lr = (0.01 - 1e-4) *
// (1 - it/20000)^0.9 + 1e-4). The two agree to rounding (TestPolyLRIsMMEngineRecursion).
// Like the other schedulers here, a position past the window is taken at its end, where
// the rate is eta_min; mmengine leaves the rate of the window's last step (t = T-1) there
// instead, which a run of exactly end iterations never sees.
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
	t, T := pos-float64(s.Begin), s.length()
	decay := math.Pow(1-math.Min(t, T)/T, s.Power)
	if lr == at.BaseLR {
		return (lr-s.EtaMin)*decay + s.EtaMin
	}
	min := s.EtaMin / at.BaseLR
	return lr * (min + (1-min)*decay)
}

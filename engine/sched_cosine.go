package engine

import (
	"errors"
	"math"

	"github.com/goselfsup/goselfsup/registry"
)

func init() {
	registry.Add(registry.ParamSchedulers, "CosineAnnealingLR", "cosine annealing of the learning rate",
		func() *CosineAnnealingLRConfig { return &CosineAnnealingLRConfig{schedulerWindow: defaultWindow()} })
}

// CosineAnnealingLRConfig anneals the learning rate to eta_min over T_max epochs.
type CosineAnnealingLRConfig struct {
	schedulerWindow
	TMax        int      `toml:"T_max" doc:"the length of the annealing (default: the window's)"`
	EtaMin      float64  `toml:"eta_min" doc:"the final learning rate"`
	EtaMinRatio *float64 `toml:"eta_min_ratio" doc:"the final learning rate as a fraction of the base one"`
}

func (c *CosineAnnealingLRConfig) Validate() error {
	var errs []error
	if c.TMax < 1 && c.End == math.MaxInt32 {
		errs = append(errs, registry.FieldErrorf("T_max", "must be at least 1 (or set end), got %d", c.TMax))
	}
	if c.EtaMinRatio != nil && c.EtaMin != 0 {
		errs = append(errs, registry.FieldErrorf("eta_min_ratio", "set eta_min or eta_min_ratio, not both"))
	}
	return errors.Join(append(errs, c.validate())...)
}

func (c *CosineAnnealingLRConfig) Build(*registry.Env) (any, error) { return &cosineLR{*c}, nil }

type cosineLR struct{ CosineAnnealingLRConfig }

func (s *cosineLR) Scale(lr float64, at Position) float64 {
	pos, started := s.place(at)
	if !started {
		return lr
	}
	t := pos - float64(s.Begin)
	T := float64(s.TMax)
	if T <= 0 {
		T = s.length()
	}
	min := s.EtaMin / at.BaseLR
	if s.EtaMinRatio != nil {
		min = *s.EtaMinRatio
	}
	return lr * (min + (1-min)*(1+math.Cos(math.Pi*math.Min(t, T)/T))/2)
}

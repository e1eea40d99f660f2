package engine

import (
	"errors"
	"math"

	"github.com/goselfsup/goselfsup/registry"
)

func init() {
	registry.Add(registry.ParamSchedulers, "LinearLR", "linear scaling of the learning rate, for warm-up",
		func() *LinearLRConfig {
			return &LinearLRConfig{schedulerWindow: defaultWindow(), StartFactor: 1.0 / 3, EndFactor: 1}
		})
}

// LinearLRConfig scales the learning rate linearly from start_factor to end_factor (warm-up).
type LinearLRConfig struct {
	schedulerWindow
	StartFactor float64 `toml:"start_factor" doc:"the factor at begin"`
	EndFactor   float64 `toml:"end_factor" doc:"the factor at end and after"`
}

func (c *LinearLRConfig) Validate() error {
	var errs []error
	if c.StartFactor <= 0 || c.StartFactor > 1 {
		errs = append(errs, registry.FieldErrorf("start_factor", "must be in (0, 1], got %g", c.StartFactor))
	}
	if c.EndFactor < 0 || c.EndFactor > 1 {
		errs = append(errs, registry.FieldErrorf("end_factor", "must be in [0, 1], got %g", c.EndFactor))
	}
	if c.End == math.MaxInt32 {
		errs = append(errs, registry.FieldErrorf("end", "is required: the warm-up lasts from begin to end"))
	}
	return errors.Join(append(errs, c.validate())...)
}

func (c *LinearLRConfig) Build(*registry.Env) (any, error) { return &linearLR{*c}, nil }

type linearLR struct{ LinearLRConfig }

func (s *linearLR) Scale(lr float64, at Position) float64 {
	pos, started := s.place(at)
	if !started {
		return lr
	}
	t, length := pos-float64(s.Begin), s.length()
	return lr * (s.StartFactor + (s.EndFactor-s.StartFactor)*math.Min(t, length)/length)
}

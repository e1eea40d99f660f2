package engine

import (
	"errors"
	"math"

	"github.com/goselfsup/goselfsup/registry"
)

func init() {
	registry.Add(registry.ParamSchedulers, "StepLR", "multiply the learning rate by gamma every step_size",
		func() *StepLRConfig { return &StepLRConfig{schedulerWindow: defaultWindow(), Gamma: 0.1} })
}

// StepLRConfig multiplies the learning rate by gamma every step_size epochs (or iterations).
type StepLRConfig struct {
	schedulerWindow
	StepSize int     `toml:"step_size" doc:"the epochs (or iterations) between two multiplications"`
	Gamma    float64 `toml:"gamma" doc:"the factor at each step"`
}

func (c *StepLRConfig) Validate() error {
	var errs []error
	if c.StepSize < 1 {
		errs = append(errs, registry.FieldErrorf("step_size", "must be at least 1, got %d", c.StepSize))
	}
	if c.Gamma <= 0 {
		errs = append(errs, registry.FieldErrorf("gamma", "must be positive, got %g", c.Gamma))
	}
	return errors.Join(append(errs, c.validate())...)
}

func (c *StepLRConfig) Build(*registry.Env) (any, error) { return &stepLR{*c}, nil }

type stepLR struct{ StepLRConfig }

func (s *stepLR) Scale(lr float64, at Position) float64 {
	pos, started := s.place(at)
	if !started {
		return lr
	}
	return lr * math.Pow(s.Gamma, math.Floor((pos-float64(s.Begin))/float64(s.StepSize)))
}

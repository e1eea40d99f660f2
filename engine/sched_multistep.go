package engine

import (
	"errors"
	"math"

	"github.com/goselfsup/goselfsup/registry"
)

func init() {
	registry.Add(registry.ParamSchedulers, "MultiStepLR", "multiply the learning rate by gamma at each milestone",
		func() *MultiStepLRConfig { return &MultiStepLRConfig{schedulerWindow: defaultWindow(), Gamma: 0.1} })
}

// MultiStepLRConfig multiplies the learning rate by gamma at each milestone.
type MultiStepLRConfig struct {
	schedulerWindow
	Milestones []int   `toml:"milestones" doc:"the epochs (or iterations) where the rate is multiplied by gamma; they count from the start of training"`
	Gamma      float64 `toml:"gamma" doc:"the factor at each milestone"`
}

func (c *MultiStepLRConfig) Validate() error {
	var errs []error
	if len(c.Milestones) == 0 {
		errs = append(errs, registry.FieldErrorf("milestones", "must list at least one milestone"))
	}
	for i := 1; i < len(c.Milestones); i++ {
		if c.Milestones[i] <= c.Milestones[i-1] {
			errs = append(errs, registry.FieldErrorf("milestones", "must increase, got %v", c.Milestones))
			break
		}
	}
	if c.Gamma <= 0 {
		errs = append(errs, registry.FieldErrorf("gamma", "must be positive, got %g", c.Gamma))
	}
	return errors.Join(append(errs, c.validate())...)
}

func (c *MultiStepLRConfig) Build(*registry.Env) (any, error) { return &multiStepLR{*c}, nil }

type multiStepLR struct{ MultiStepLRConfig }

func (s *multiStepLR) Scale(lr float64, at Position) float64 {
	pos, started := s.place(at)
	if !started {
		return lr
	}
	n := 0
	for _, m := range s.Milestones {
		if float64(m) <= pos {
			n++
		}
	}
	return lr * math.Pow(s.Gamma, float64(n))
}

func (c *MultiStepLRConfig) CheckRun(l RunLength) error {
	return checkMilestones(c.schedulerWindow, "milestones", c.Milestones, l)
}

package mocov2

import (
	"errors"
	"math"

	"github.com/goselfsup/goselfsup/engine"
	"github.com/goselfsup/goselfsup/registry"
)

func init() {
	registry.Add(registry.ParamSchedulers, "PolyLR", "polynomial decay of the learning rate to eta_min (mmengine's; examples/mocov2)",
		func() *PolyLRConfig { return &PolyLRConfig{ByEpoch: true, Power: 1} })
}

// PolyLRConfig is mmengine's PolyLR: from begin to end the learning rate decays as
//
//	lr_t = (lr - eta_min) * (1 - t / T)^power + eta_min,  T = end - begin - 1
//
// reaching eta_min at the window's last step and staying there; with
// convert_to_iter_based, t and T count iterations (begin and end stay in epochs).
type PolyLRConfig struct {
	ByEpoch            bool    `toml:"by_epoch" doc:"count in epochs (else in iterations)"`
	Begin              int     `toml:"begin" doc:"the first epoch (or iteration) of the decay"`
	End                int     `toml:"end" doc:"the epoch (or iteration) where the decay ends, exclusive; required"`
	ConvertToIterBased bool    `toml:"convert_to_iter_based" doc:"with by_epoch, decay every iteration"`
	EtaMin             float64 `toml:"eta_min" doc:"the final learning rate"`
	Power              float64 `toml:"power" doc:"the power of the polynomial"`
}

func (c *PolyLRConfig) Validate() error {
	var errs []error
	if c.Begin < 0 || c.End <= c.Begin {
		errs = append(errs, registry.FieldErrorf("end", "is required and the window [begin, end) = [%d, %d) must not be empty", c.Begin, c.End))
	}
	if c.ConvertToIterBased && !c.ByEpoch {
		errs = append(errs, registry.FieldErrorf("convert_to_iter_based", "needs by_epoch = true"))
	}
	if c.Power <= 0 {
		errs = append(errs, registry.FieldErrorf("power", "must be positive, got %g", c.Power))
	}
	if c.EtaMin < 0 {
		errs = append(errs, registry.FieldErrorf("eta_min", "must not be negative, got %g", c.EtaMin))
	}
	return errors.Join(errs...)
}

func (c *PolyLRConfig) Build(*registry.Env) (any, error) { return &PolyLR{*c}, nil }

// PolyLR is the built PolyLRConfig, an engine.ParamScheduler. As the shipped schedulers, it
// scales the rate that the schedulers before it gave, with eta_min relative to the base
// learning rate.
type PolyLR struct{ PolyLRConfig }

var _ engine.ParamScheduler = (*PolyLR)(nil)

func (s *PolyLR) Scale(lr float64, at engine.Position) float64 {
	pos, begin, end := float64(at.Epoch), float64(s.Begin), float64(s.End)
	switch {
	case !s.ByEpoch:
		pos = float64(at.GlobalIter())
	case s.ConvertToIterBased:
		pos = float64(at.GlobalIter())
		begin, end = begin*float64(at.ItersPerEpoch), end*float64(at.ItersPerEpoch)
	}
	if pos < begin {
		return lr
	}
	total := math.Max(end-begin-1, 1)
	t := math.Min(pos-begin, total)
	min := s.EtaMin / at.BaseLR
	return lr * (min + (1-min)*math.Pow(1-t/total, s.Power))
}

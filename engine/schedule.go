package engine

import (
	"fmt"
	"math"

	"github.com/goselfsup/goselfsup/registry"
)

// Schedule gives the learning rate of every iteration: the base learning rate times the
// factor of each parameter scheduler, applied one after the other as mmengine chains them.
// Before its window [begin, end) a scheduler has no effect; after it, it keeps its last
// value.
type Schedule struct {
	BaseLR        float64
	ItersPerEpoch int
	schedulers    []scheduler
}

type scheduler struct {
	window     schedulerWindow
	factor     func(t, length float64) float64 // t units into the window of the given length
	milestones []int                           // MultiStepLR, in the scheduler's units
}

// NewSchedule builds the schedule of param_scheduler for an optimizer with base lr.
func NewSchedule(reg *registry.Registry, specs []registry.Spec, baseLR float64, itersPerEpoch int) (*Schedule, error) {
	s := &Schedule{BaseLR: baseLR, ItersPerEpoch: itersPerEpoch}
	for _, spec := range specs {
		cfg, err := reg.Decode(spec)
		if err != nil {
			return nil, err
		}
		var sc scheduler
		switch c := cfg.(type) {
		case *MultiStepLRConfig:
			ms, gamma := c.Milestones, c.Gamma
			sc = scheduler{window: c.schedulerWindow, milestones: ms}
			sc.factor = func(t, _ float64) float64 { return math.Pow(gamma, float64(countLE(ms, t))) }
		case *StepLRConfig:
			step, gamma := float64(c.StepSize), c.Gamma
			sc = scheduler{window: c.schedulerWindow}
			sc.factor = func(t, _ float64) float64 { return math.Pow(gamma, math.Floor(t/step)) }
		case *LinearLRConfig:
			start, end := c.StartFactor, c.EndFactor
			sc = scheduler{window: c.schedulerWindow}
			sc.factor = func(t, length float64) float64 { return start + (end-start)*math.Min(t, length)/length }
		case *CosineAnnealingLRConfig:
			tmax := float64(c.TMax)
			etaMin, ratio := c.EtaMin, c.EtaMinRatio
			sc = scheduler{window: c.schedulerWindow}
			sc.factor = func(t, length float64) float64 {
				T := tmax
				if T <= 0 {
					T = length
				}
				min := etaMin / baseLR
				if ratio != nil {
					min = *ratio
				}
				return min + (1-min)*(1+math.Cos(math.Pi*math.Min(t, T)/T))/2
			}
		default:
			return nil, fmt.Errorf("%s: %s is not a learning-rate scheduler", spec.Path, spec.Type)
		}
		s.schedulers = append(s.schedulers, sc)
	}
	return s, nil
}

func countLE(ms []int, t float64) int {
	n := 0
	for _, m := range ms {
		if float64(m) <= t {
			n++
		}
	}
	return n
}

// LR is the learning rate of iteration iter (0-based, within the epoch) of epoch (0-based).
//
// Each scheduler counts in its own units: epochs (by_epoch), iterations, or fractions of
// epochs updated every iteration (by_epoch with convert_to_iter_based). Inside its window a
// factor is taken t units after begin; after the window, at its end (so a warm-up reaches its
// end_factor and stays there); milestones count from the start of training.
func (s *Schedule) LR(epoch, iter int) float64 {
	lr := s.BaseLR
	for _, sc := range s.schedulers {
		w := sc.window
		pos := float64(epoch) // in the scheduler's units
		switch {
		case !w.ByEpoch:
			pos = float64(epoch*s.ItersPerEpoch + iter)
		case w.ConvertToIterBased:
			pos = float64(epoch) + float64(iter)/float64(s.ItersPerEpoch)
		}
		begin, end := float64(w.Begin), float64(w.End)
		if pos < begin {
			continue
		}
		if sc.milestones != nil {
			lr *= sc.factor(math.Min(pos, end), 0)
			continue
		}
		lr *= sc.factor(math.Min(pos, end)-begin, end-begin)
	}
	return lr
}

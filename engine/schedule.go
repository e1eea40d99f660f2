package engine

import (
	"fmt"
	"math"

	"github.com/goselfsup/goselfsup/registry"
)

// ParamScheduler is a component of the "param_schedulers" namespace: it scales the learning
// rate at each point of training. Schedulers chain as mmengine's do: each scales the rate
// that the ones before it gave.
type ParamScheduler interface {
	Scale(lr float64, at Position) float64
}

// Position is a point of training, as a scheduler sees it.
type Position struct {
	Epoch         int // 0-based
	Iter          int // 0-based, within the epoch
	ItersPerEpoch int
	// BaseLR is the optimizer's learning rate, before any scheduler.
	BaseLR float64
}

// GlobalIter is the number of iterations before this one.
func (p Position) GlobalIter() int { return p.Epoch*p.ItersPerEpoch + p.Iter }

// Schedule gives the learning rate of every iteration: the base learning rate scaled by each
// parameter scheduler in turn.
type Schedule struct {
	BaseLR        float64
	ItersPerEpoch int
	schedulers    []ParamScheduler
}

// NewSchedule builds the schedulers of param_scheduler for an optimizer with base lr.
func NewSchedule(env *registry.Env, specs []registry.Spec, baseLR float64, itersPerEpoch int) (*Schedule, error) {
	s := &Schedule{BaseLR: baseLR, ItersPerEpoch: itersPerEpoch}
	for _, spec := range specs {
		ps, err := registry.Build[ParamScheduler](env, spec)
		if err != nil {
			return nil, err
		}
		s.schedulers = append(s.schedulers, ps)
	}
	return s, nil
}

// LR is the learning rate of iteration iter (0-based, within the epoch) of epoch (0-based).
func (s *Schedule) LR(epoch, iter int) float64 {
	at := Position{Epoch: epoch, Iter: iter, ItersPerEpoch: s.ItersPerEpoch, BaseLR: s.BaseLR}
	lr := s.BaseLR
	for _, sc := range s.schedulers {
		lr = sc.Scale(lr, at)
	}
	return lr
}

// schedulerWindow holds the keys every mmengine parameter scheduler shares, and places a
// point of training in the scheduler's units.
type schedulerWindow struct {
	ByEpoch            bool `toml:"by_epoch" doc:"count in epochs (else in iterations)"`
	Begin              int  `toml:"begin" doc:"the first epoch (or iteration) of the scheduler"`
	End                int  `toml:"end" doc:"the epoch (or iteration) where it stops, exclusive; default: the end of training"`
	ConvertToIterBased bool `toml:"convert_to_iter_based" doc:"with by_epoch, update every iteration by fractions of epochs"`
}

func defaultWindow() schedulerWindow { return schedulerWindow{ByEpoch: true, End: math.MaxInt32} }

func (w schedulerWindow) validate() error {
	if w.Begin < 0 || w.End <= w.Begin {
		return registry.FieldErrorf("end", "the window [begin, end) = [%d, %d) is empty", w.Begin, w.End)
	}
	if w.ConvertToIterBased && !w.ByEpoch {
		return registry.FieldErrorf("convert_to_iter_based", "needs by_epoch = true")
	}
	return nil
}

// place returns the position in the scheduler's units (epochs, iterations, or fractions of
// epochs with convert_to_iter_based) and whether the window has begun.
//
// Inside its window a factor is taken t units after begin; after the window, at its end (so
// a warm-up reaches its end_factor and stays there).
func (w schedulerWindow) place(at Position) (pos float64, started bool) {
	pos = float64(at.Epoch)
	switch {
	case !w.ByEpoch:
		pos = float64(at.GlobalIter())
	case w.ConvertToIterBased:
		pos = float64(at.Epoch) + float64(at.Iter)/float64(at.ItersPerEpoch)
	}
	return math.Min(pos, float64(w.End)), pos >= float64(w.Begin)
}

// length is the window's length in its units; unbounded windows are MaxInt32 long.
func (w schedulerWindow) length() float64 { return float64(w.End - w.Begin) }

// unit names the window's unit, for messages.
func (w schedulerWindow) unit() string {
	if w.ByEpoch {
		return "epoch"
	}
	return "iteration"
}

func checkMilestones(w schedulerWindow, key string, milestones []int, l RunLength) error {
	limit := l.Epochs
	if !w.ByEpoch {
		limit = l.Iters
	}
	if limit == 0 {
		return nil // not known before the data is read
	}
	// A milestone at the run's end is inert but common (mmselfsup's 90-epoch linear
	// evaluation steps at [30, 60, 90]); one beyond it says the schedule was written for a
	// longer run.
	for _, m := range milestones {
		if m > limit {
			return fmt.Errorf("%s %v: %d is beyond the run's %d %ss; the schedule was written for a longer run", key, milestones, m, limit, w.unit())
		}
	}
	return nil
}

package mocov2

import (
	"errors"
	"fmt"
	"math"

	"go.uber.org/zap"

	"github.com/goselfsup/goselfsup/engine"
	"github.com/goselfsup/goselfsup/registry"
)

func init() {
	registry.Add(registry.Hooks, "MomentumScheduleHook", "cosine schedule of a momentum encoder's momentum (BYOL's; examples/mocov2)",
		func() *MomentumScheduleHookConfig { return &MomentumScheduleHookConfig{Interval: 50} })
}

// MomentumScheduleHookConfig anneals the momentum of the key encoder's moving average
// along a cosine, as BYOL does (and mmpretrain's CosineEMA): before iteration k of K,
//
//	momentum_k = end_momentum + (base - end_momentum) * (1 + cos(pi k / K)) / 2
//
// where base is the model's momentum. Momenta are in mmengine's convention, the weight of
// the query encoder: with end_momentum = 0 the key encoder moves less and less and stops at
// the end (BYOL's τ going from 1 - base to 1).
type MomentumScheduleHookConfig struct {
	EndMomentum float64 `toml:"end_momentum" doc:"the momentum at the end of training (mmengine's convention: 0 freezes the key encoder)"`
	Interval    int     `toml:"interval" doc:"log the momentum every interval iterations"`
}

func (c *MomentumScheduleHookConfig) Validate() error {
	var errs []error
	if c.EndMomentum < 0 || c.EndMomentum > 1 {
		errs = append(errs, registry.FieldErrorf("end_momentum", "must be in [0, 1], got %g", c.EndMomentum))
	}
	if c.Interval < 1 {
		errs = append(errs, registry.FieldErrorf("interval", "must be at least 1, got %d", c.Interval))
	}
	return errors.Join(errs...)
}

// MomentumModel is a model whose momentum encoder MomentumScheduleHook schedules.
type MomentumModel interface {
	// BaseMomentum is the configured momentum.
	BaseMomentum() float64
	// SetMomentum sets the momentum of the next steps.
	SetMomentum(momentum float64) error
}

func (c *MomentumScheduleHookConfig) Build(*registry.Env) (any, error) {
	h := &momentumHook{cfg: *c}
	return &engine.Hook{Name: "MomentumScheduleHook", Priority: engine.PriorityNormal,
		BeforeRun: h.beforeRun, BeforeTrainIter: h.beforeTrainIter}, nil
}

type momentumHook struct {
	cfg   MomentumScheduleHookConfig
	model MomentumModel
}

func (h *momentumHook) beforeRun(r *engine.Runner) error {
	m, ok := r.Model.(MomentumModel)
	if !ok {
		return fmt.Errorf("model %T has no momentum encoder to schedule", r.Model)
	}
	h.model = m
	return nil
}

// Momentum is the momentum before iteration k of a run of total iterations.
func (c *MomentumScheduleHookConfig) Momentum(base float64, k, total int) float64 {
	frac := float64(k) / float64(max(total, 1))
	return c.EndMomentum + (base-c.EndMomentum)*(1+math.Cos(math.Pi*frac))/2
}

func (h *momentumHook) beforeTrainIter(r *engine.Runner, _ engine.IterInfo) error {
	m := h.cfg.Momentum(h.model.BaseMomentum(), r.Iter, r.MaxIters)
	if err := h.model.SetMomentum(m); err != nil {
		return err
	}
	if r.Iter%h.cfg.Interval == 0 {
		r.Log.Info("key encoder momentum", zap.Int("iter", r.Iter), zap.Float64("momentum", m),
			zap.Float64("tau", 1-m))
	}
	return nil
}

package engine

import (
	"math"
	"testing"

	"github.com/goselfsup/goselfsup/registry"
)

func TestSchedules(t *testing.T) {
	sched := func(specs ...registry.Spec) *Schedule {
		s, err := NewSchedule(nil, specs, 0.03, 10)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	spec := func(typ string, table map[string]any) registry.Spec {
		return registry.NewSpec(registry.ParamSchedulers, typ, table)
	}
	npid := sched(spec("MultiStepLR", map[string]any{"milestones": []int{120, 160}, "gamma": 0.1}))
	warm := sched(spec("LinearLR", map[string]any{"start_factor": 0.25, "by_epoch": false, "begin": 0, "end": 20}),
		spec("MultiStepLR", map[string]any{"milestones": []int{2}, "gamma": 0.1}))
	cos := sched(spec("CosineAnnealingLR", map[string]any{"T_max": 10, "eta_min": 0.003}))
	for _, tc := range []struct {
		name        string
		s           *Schedule
		epoch, iter int
		want        float64
	}{
		// NPID's schedule: 0.03 for epochs 0-119, 0.003 for 120-159, 0.0003 from 160.
		{"npid", npid, 0, 0, 0.03}, {"npid", npid, 119, 9, 0.03}, {"npid", npid, 120, 0, 0.003},
		{"npid", npid, 159, 5, 0.003}, {"npid", npid, 160, 0, 0.0003}, {"npid", npid, 199, 9, 0.0003},
		// A 20-iteration linear warm-up from 1/4, then a step at epoch 2.
		{"warm-up", warm, 0, 0, 0.03 * 0.25}, {"warm-up", warm, 1, 0, 0.03 * (0.25 + 0.75*10/20)},
		{"warm-up", warm, 1, 9, 0.03 * (0.25 + 0.75*19/20)}, {"warm-up", warm, 2, 0, 0.003},
		// Cosine from 0.03 to 0.003 over 10 epochs.
		{"cosine", cos, 0, 0, 0.03}, {"cosine", cos, 5, 0, 0.003 + 0.027*0.5}, {"cosine", cos, 12, 0, 0.003},
	} {
		if got := tc.s.LR(tc.epoch, tc.iter); math.Abs(got-tc.want) > 1e-12 {
			t.Errorf("%s at epoch %d iter %d: lr %g, want %g", tc.name, tc.epoch, tc.iter, got, tc.want)
		}
	}
}

package mocov2_test

import (
	"math"
	"testing"

	"github.com/goselfsup/goselfsup/engine"
	"github.com/goselfsup/goselfsup/registry"
)

func TestPolyLR(t *testing.T) {
	const base = 0.1
	ipe := 4 // iterations per epoch
	for _, tc := range []struct {
		name        string
		table       map[string]any
		epoch, iter int
		want        float64
	}{
		// By epoch over [0, 5): T = 4 epochs, power 1: 0.1 * (1 - t/4).
		{"epoch 0", map[string]any{"end": 5}, 0, 3, 0.1},
		{"epoch 1", map[string]any{"end": 5}, 1, 0, 0.075},
		{"epoch 2", map[string]any{"end": 5}, 2, 2, 0.05},
		{"last epoch", map[string]any{"end": 5}, 4, 0, 0},
		{"after the window", map[string]any{"end": 5}, 7, 0, 0},
		// Power 2 and eta_min 0.01: (0.1 - 0.01) * (1 - 1/4)² + 0.01 = 0.060625.
		{"power 2", map[string]any{"end": 5, "power": 2.0, "eta_min": 0.01}, 1, 0, 0.060625},
		// Before begin the rate is untouched.
		{"before begin", map[string]any{"begin": 2, "end": 6}, 1, 3, 0.1},
		{"from begin", map[string]any{"begin": 2, "end": 6}, 3, 0, 0.1 * (1 - 1.0/3)},
		// Iterations [0, 9): T = 8; epoch 1 iteration 2 is iteration 6: 0.1 * (1 - 6/8).
		{"by iteration", map[string]any{"by_epoch": false, "end": 9}, 1, 2, 0.025},
		// Epochs [1, 3) in iterations: [4, 12), T = 7; epoch 2 iteration 1 is 9: 0.1 * (1 - 5/7).
		{"iteration based", map[string]any{"begin": 1, "end": 3, "convert_to_iter_based": true}, 2, 1, 0.1 * 2 / 7},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, err := registry.Build[engine.ParamScheduler](nil, registry.NewSpec(registry.ParamSchedulers, "PolyLR", tc.table))
			if err != nil {
				t.Fatal(err)
			}
			got := s.Scale(base, engine.Position{Epoch: tc.epoch, Iter: tc.iter, ItersPerEpoch: ipe, BaseLR: base})
			if math.Abs(got-tc.want) > 1e-12 {
				t.Errorf("lr = %.9g, want %.9g", got, tc.want)
			}
		})
	}
}

func TestPolyLRConfigChecks(t *testing.T) {
	for _, table := range []map[string]any{
		{}, // no end
		{"begin": 3, "end": 3},
		{"end": 5, "power": 0.0},
		{"end": 5, "by_epoch": false, "convert_to_iter_based": true},
	} {
		if _, err := registry.Build[engine.ParamScheduler](nil, registry.NewSpec(registry.ParamSchedulers, "PolyLR", table)); err == nil {
			t.Errorf("%v: no error", table)
		}
	}
}

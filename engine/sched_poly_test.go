package engine

import (
	"math"
	"os"
	"path/filepath"
	"testing"

	"github.com/goselfsup/goselfsup/registry"
)

// mmseg's schedule_20k, as its 1.x config writes it.
const schedule20k = `param_scheduler = [{type = "PolyLR", eta_min = 1e-4, power = 0.9, begin = 0, end = 20000, by_epoch = false}]`

func poly20k(t *testing.T, itersPerEpoch int) *Schedule {
	t.Helper()
	path := filepath.Join(t.TempDir(), "schedule_20k.toml")
	if err := os.WriteFile(path, []byte(schedule20k), 0o644); err != nil {
		t.Fatal(err)
	}
	tree, err := (&registry.Loader{}).Load(path)
	if err != nil {
		t.Fatal(err)
	}
	var cfg struct {
		ParamScheduler []registry.Spec `toml:"param_scheduler" registry:"param_schedulers"`
	}
	if err := tree.Decode(&cfg); err != nil {
		t.Fatal(err)
	}
	s, err := NewSchedule(nil, cfg.ParamScheduler, 0.01, itersPerEpoch)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// The 20k schedule gives mmengine's per-iteration rate (0.01-1e-4)*(1-it/19999)**0.9 + 1e-4
// (T = end - begin - 1); the golden values are Python's, from that formula.
func TestPolyLRSchedule20k(t *testing.T) {
	golden := map[int]float64{
		0: 0.01, 1: 0.009999554476610004, 2: 0.009999108950992165, 1000: 0.009553342887381026,
		9999: 0.005405517388434012, 10000: 0.005405039889481484, 19998: 0.00010133268571401417,
		19999: 0.0001,
	}
	// An iteration-based loop (one "epoch" of 20000 iterations) and an epoch-based one
	// with 500 iterations per epoch count the same global iterations.
	for _, perEpoch := range []int{20000, 500} {
		s := poly20k(t, perEpoch)
		for it, want := range golden {
			if got := s.LR(it/perEpoch, it%perEpoch); math.Abs(got-want) > 1e-15*want { // Go's math.Pow and libm's pow differ in the last bit
				t.Errorf("%d iterations per epoch, iteration %d: lr %.17g, want %.17g", perEpoch, it, got, want)
			}
		}
	}
}

// The closed form is mmengine's PolyParamScheduler recursion, step by step.
func TestPolyLRIsMMEngineRecursion(t *testing.T) {
	for _, tc := range []struct {
		base, etaMin, power float64
		begin, end          int
	}{{0.01, 1e-4, 0.9, 0, 20000}, {0.1, 0, 2, 5, 105}, {0.3, 0.01, 1, 3, 10}} {
		s, err := NewSchedule(nil, []registry.Spec{registry.NewSpec(registry.ParamSchedulers, "PolyLR", map[string]any{
			"eta_min": tc.etaMin, "power": tc.power, "begin": tc.begin, "end": tc.end, "by_epoch": false,
		})}, tc.base, 1)
		if err != nil {
			t.Fatal(err)
		}
		T := float64(tc.end - tc.begin - 1) // mmengine's total_iters
		lr := tc.base
		for it := 0; it < tc.end; it++ {
			if step := it - tc.begin; step > 0 {
				lr = (lr-tc.etaMin)*math.Pow(1-1/(T-float64(step)+1), tc.power) + tc.etaMin
			}
			if got := s.LR(it, 0); math.Abs(got-lr) > 1e-12*tc.base {
				t.Fatalf("%+v, iteration %d: lr %.17g, mmengine's recursion %.17g", tc, it, got, lr)
			}
		}
	}
}

// PolyLR chains as the other schedulers do: after a linear warm-up it decays the warmed
// rate, and past its window it holds eta_min.
func TestPolyLRChainsAndEnds(t *testing.T) {
	spec := func(typ string, table map[string]any) registry.Spec {
		return registry.NewSpec(registry.ParamSchedulers, typ, table)
	}
	s, err := NewSchedule(nil, []registry.Spec{
		spec("LinearLR", map[string]any{"start_factor": 0.5, "by_epoch": false, "begin": 0, "end": 10}),
		spec("PolyLR", map[string]any{"eta_min": 0.001, "power": 1.0, "by_epoch": false, "begin": 0, "end": 100}),
	}, 0.1, 1000)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		iter int
		want float64
	}{
		{0, 0.05},
		{5, 0.1 * 0.75 * (0.01 + 0.99*(1-5.0/99))},
		{50, 0.001 + 0.099*(1-50.0/99)},
		{99, 0.001},
		{100, 0.001}, {500, 0.001},
	} {
		if got := s.LR(0, tc.iter); math.Abs(got-tc.want) > 1e-15 {
			t.Errorf("iteration %d: lr %.17g, want %.17g", tc.iter, got, tc.want)
		}
	}
	for _, bad := range []map[string]any{{"power": 0.9}, {"end": 10, "power": -1.0}, {"end": 10, "eta_min": -1.0}} {
		if _, err := registry.Default.Decode(spec("PolyLR", bad)); err == nil {
			t.Errorf("PolyLR %v decoded", bad)
		}
	}
}

// With convert_to_iter_based, the window is counted in iterations as mmengine converts it:
// epochs [1, 3) of 10 iterations are iterations [10, 30), T = 19.
func TestPolyLRConvertToIterBased(t *testing.T) {
	s, err := NewSchedule(nil, []registry.Spec{registry.NewSpec(registry.ParamSchedulers, "PolyLR", map[string]any{
		"power": 1.0, "begin": 1, "end": 3, "convert_to_iter_based": true,
	})}, 0.1, 10)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		epoch, iter int
		want        float64
	}{{0, 5, 0.1}, {1, 0, 0.1}, {2, 0, 0.1 * (1 - 10.0/19)}, {2, 9, 0}, {3, 0, 0}} {
		if got := s.LR(tc.epoch, tc.iter); math.Abs(got-tc.want) > 1e-15 {
			t.Errorf("epoch %d iteration %d: lr %.17g, want %.17g", tc.epoch, tc.iter, got, tc.want)
		}
	}
}

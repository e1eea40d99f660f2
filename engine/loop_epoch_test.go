package engine

import (
	"slices"
	"testing"
)

// The epochs after which mmengine's EpochBasedTrainLoop validates: from val_begin on, the
// multiples of val_interval, and the last.
func TestValidationEpochs(t *testing.T) {
	for _, tc := range []struct {
		begin, interval, max int
		want                 []int
	}{
		{1, 1, 3, []int{1, 2, 3}},
		{1, 10, 20, []int{10, 20}},
		{1, 4, 10, []int{4, 8, 10}},
		{5, 2, 9, []int{6, 8, 9}},
	} {
		l := &epochLoop{EpochBasedTrainLoopConfig{MaxEpochs: tc.max, ValBegin: tc.begin, ValInterval: tc.interval}}
		var got []int
		for e := 1; e <= tc.max; e++ {
			if l.due(e) {
				got = append(got, e)
			}
		}
		if !slices.Equal(got, tc.want) {
			t.Errorf("val_begin %d, val_interval %d, %d epochs: %v, want %v", tc.begin, tc.interval, tc.max, got, tc.want)
		}
	}
}

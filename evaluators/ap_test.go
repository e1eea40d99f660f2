package evaluators

import (
	"math"
	"testing"
)

// Average precision on rankings worked out by hand.
func TestAveragePrecisionByHand(t *testing.T) {
	for _, c := range []struct {
		name         string
		scores       []float64
		positive     []bool
		sklearn, voc float64
	}{
		// Positives at ranks 1, 4 and 5: precision 1, 1/2, 3/5 at recalls 1/3, 2/3, 1;
		// sklearn sums 1/3 (1 + 1/2 + 3/5) = 0.7; VOC raises the precision at recall 2/3 to
		// the 3/5 reached later: 1/3 (1 + 3/5 + 3/5).
		{"no ties", []float64{5, 4, 3, 2, 1}, []bool{true, false, false, true, true}, 0.7, 2.2 / 3},
		// A tie of a positive and a negative at 0.5 is one threshold: precision 2/3 at recall
		// 1, whichever comes first: 0.5 * 1 + 0.5 * 2/3 both ways.
		{"a tie", []float64{0.9, 0.5, 0.5, 0.1}, []bool{true, false, true, false}, 5.0 / 6, 5.0 / 6},
		{"the tie the other way round", []float64{0.9, 0.5, 0.5, 0.1}, []bool{true, true, false, false}, 5.0 / 6, 5.0 / 6},
		// All tied: one threshold, precision 2/4 at recall 1.
		{"all tied", []float64{1, 1, 1, 1}, []bool{true, false, true, false}, 0.5, 0.5},
		{"perfect", []float64{3, 2, 1}, []bool{true, true, false}, 1, 1},
		// Unsorted input: the positives rank 2nd and 3rd: precision 1/2 and 2/3 at recalls
		// 1/2 and 1; sklearn: 1/2 (1/2 + 2/3); VOC raises the first to 2/3: 2/3.
		{"unsorted", []float64{0.2, 0.9, 0.7, 0.8}, []bool{false, false, true, true}, (0.5 + 2.0/3) / 2, 2.0 / 3},
	} {
		if got := AveragePrecision(c.scores, c.positive); math.Abs(got-c.sklearn) > 1e-12 {
			t.Errorf("%s: AveragePrecision = %v, want %v", c.name, got, c.sklearn)
		}
		if got := VOCAveragePrecision(c.scores, c.positive); math.Abs(got-c.voc) > 1e-12 {
			t.Errorf("%s: VOCAveragePrecision = %v, want %v", c.name, got, c.voc)
		}
	}
	if !math.IsNaN(AveragePrecision([]float64{1, 2}, []bool{false, false})) {
		t.Error("AP without positives is not NaN")
	}
}

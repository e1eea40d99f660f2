package evaluators

import (
	"math"
	"testing"
)

// A hand-made example, T = 1. Training features: (1, 0) of class 0, (0.8, 0.6) and (0, 1) of
// class 1. Query (0.6, 0.8), class 1: similarities 0.6, 0.96, 0.8, so every k votes class 1.
// Query (1, 0.1), class 0, normalised (0.995, 0.0995): similarities 0.995, 0.856, 0.0995;
// k = 1 and 2 vote class 0 (e^0.995 = 2.70 against e^0.856 = 2.35), but k = 3 adds
// e^0.0995 = 1.10 to class 1, which then wins (3.46).
func TestWeightedKNNHandMade(t *testing.T) {
	train := [][]float32{{1, 0}, {0.8, 0.6}, {0, 1}}
	trainY := []int{0, 1, 1}
	test := [][]float32{{0.6, 0.8}, {1, 0.1}}
	testY := []int{1, 0}
	res, err := WeightedKNN(train, trainY, test, testY, 2, []int{1, 2, 3, 10}, 1)
	if err != nil {
		t.Fatal(err)
	}
	want := []float64{100, 100, 50, 50} // k = 10 uses the 3 there are
	for i, r := range res {
		if math.Abs(r.Top1-want[i]) > 1e-9 || r.Top5 != 100 {
			t.Errorf("k = %d: top-1 %g, top-5 %g; want %g and 100", r.K, r.Top1, r.Top5, want[i])
		}
	}
	// Features are normalised: scaling them changes nothing.
	scaled := [][]float32{{5, 0}, {8, 6}, {0, 0.1}}
	res2, _ := WeightedKNN(scaled, trainY, test, testY, 2, []int{3}, 1)
	if res2[0].Top1 != 50 {
		t.Errorf("scaled features: top-1 %g, want 50", res2[0].Top1)
	}
	if _, err := WeightedKNN(train, trainY[:2], test, testY, 2, []int{1}, 1); err == nil {
		t.Error("mismatched labels were accepted")
	}
}

func TestRankOfBreaksTiesByIndex(t *testing.T) {
	if r := rankOf([]float64{1, 2, 2, 0}, 2); r != 1 {
		t.Errorf("rank of class 2 = %d, want 1 (class 1 ties and comes first)", r)
	}
	if r := rankOf([]float64{1, 2, 2, 0}, 1); r != 0 {
		t.Errorf("rank of class 1 = %d, want 0", r)
	}
}

func TestTopKAccuracy(t *testing.T) {
	// Four samples, three classes. Sample 0: label first; sample 1: label second; sample 2:
	// label last; sample 3: a tie between classes 0 and 2 with label 2, which ranks second.
	scores := Features{N: 4, Dim: 3, Data: []float32{
		0.9, 0.05, 0.05,
		0.5, 0.2, 0.3,
		0.6, 0.1, 0.3,
		0.4, 0.2, 0.4,
	}}
	got, err := TopKAccuracy(scores, []int{0, 2, 1, 2}, []int{1, 2, 3})
	if err != nil {
		t.Fatal(err)
	}
	want := []float64{25, 75, 100}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("top-%d accuracy %v, want %v", i+1, got[i], want[i])
		}
	}
	if _, err := TopKAccuracy(scores, []int{0, 1, 2, 3}, []int{1}); err == nil {
		t.Error("label 3 of 3 classes: no error")
	}
}

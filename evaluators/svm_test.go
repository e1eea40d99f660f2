package evaluators

import (
	"math"
	"math/rand/v2"
	"testing"
)

// twoClouds draws n points in d dimensions, the positives (about a third) shifted along
// every axis, overlapping the negatives so that some margins are violated.
func twoClouds(n, d int, seed uint64) (Matrix, []bool) {
	rng := rand.New(rand.NewPCG(seed, 1))
	x := Matrix{Rows: n, Cols: d, Data: make([]float64, n*d)}
	pos := make([]bool, n)
	for i := range n {
		pos[i] = rng.IntN(3) == 0
		for j := range d {
			v := rng.NormFloat64()
			if pos[i] {
				v += 0.8
			}
			x.Data[i*d+j] = v
		}
	}
	return x, pos
}

// minimizePrimal minimises PrimalObjective by gradient descent with step 1/L, L bounding
// the gradient's Lipschitz constant: an independent way to the optimum the dual solver finds.
func minimizePrimal(x Matrix, pos []bool, o SVMOptions) (w []float64, bias float64) {
	d := x.Cols
	cmax := o.C * math.Max(1, o.PositiveWeight)
	l := 1.0
	for i := range x.Rows {
		l += 2 * cmax * (dot(x.Row(i), x.Row(i)) + 1)
	}
	w = make([]float64, d)
	grad := make([]float64, d+1)
	for range 200000 {
		for j := range d {
			grad[j] = w[j]
		}
		grad[d] = bias
		for i := range x.Rows {
			y, c := -1.0, o.C
			if pos[i] {
				y, c = 1, o.C*o.PositiveWeight
			}
			xi := x.Row(i)
			if m := 1 - y*(dot(w, xi)+bias); m > 0 {
				for j := range d {
					grad[j] -= 2 * c * m * y * xi[j]
				}
				grad[d] -= 2 * c * m * y
			}
		}
		for j := range d {
			w[j] -= grad[j] / l
		}
		bias -= grad[d] / l
	}
	return w, bias
}

// The dual coordinate descent reaches the primal optimum that plain gradient descent on the
// primal reaches.
func TestSVMDualSolverMatchesDirectMinimisation(t *testing.T) {
	x, pos := twoClouds(40, 4, 7)
	all := make([]int, x.Rows)
	for i := range all {
		all[i] = i
	}
	for _, o := range []SVMOptions{
		{C: 1, PositiveWeight: 2, Tol: 1e-10, MaxIter: 100000},
		{C: 0.05, PositiveWeight: 1, Tol: 1e-10, MaxIter: 100000},
		{C: 10, PositiveWeight: 2, Tol: 1e-10, MaxIter: 100000},
	} {
		wantW, wantB := minimizePrimal(x, pos, o)
		want := PrimalObjective(x, pos, all, o, wantW, wantB)
		m := TrainSVM(x, pos, nil, o)
		if !m.Converged {
			t.Errorf("C = %g: not converged in %d passes", o.C, m.Iterations)
		}
		got := PrimalObjective(x, pos, all, o, m.W, m.Bias)
		if math.Abs(got-want) > 1e-9*want {
			t.Errorf("C = %g: objective %.12g, gradient descent reaches %.12g", o.C, got, want)
		}
		for j := range wantW {
			if math.Abs(m.W[j]-wantW[j]) > 1e-5 {
				t.Errorf("C = %g: w[%d] = %.8f, gradient descent gives %.8f", o.C, j, m.W[j], wantW[j])
			}
		}
		if math.Abs(m.Bias-wantB) > 1e-5 {
			t.Errorf("C = %g: bias %.8f, gradient descent gives %.8f", o.C, m.Bias, wantB)
		}
		// At the benchmark's tolerance the objective is already within 1e-4 of the optimum.
		o.Tol = 1e-4
		m = TrainSVM(x, pos, nil, o)
		if got := PrimalObjective(x, pos, all, o, m.W, m.Bias); got-want > 1e-4*want {
			t.Errorf("C = %g, tol 1e-4: objective %.8g, the optimum %.8g", o.C, got, want)
		}
	}
}

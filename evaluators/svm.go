package evaluators

import (
	"math"
	"math/rand/v2"
)

// Matrix is a dense row-major matrix of float64: row i is Data[i*Cols : (i+1)*Cols].
type Matrix struct {
	Rows, Cols int
	Data       []float64
}

// Row returns row i.
func (m Matrix) Row(i int) []float64 { return m.Data[i*m.Cols : (i+1)*m.Cols : (i+1)*m.Cols] }

// SVMOptions are a linear SVM's training parameters, named as scikit-learn's LinearSVC.
type SVMOptions struct {
	C              float64 // the cost
	PositiveWeight float64 // the positives' class weight (their cost is C times it); the negatives' is 1
	Tol            float64 // stop when the projected gradients span at most this
	MaxIter        int     // passes over the data at most
	Seed           uint64  // the order of the coordinate updates
}

// LinearSVM is a trained linear SVM: the decision value of x is W.x + Bias.
type LinearSVM struct {
	W          []float64
	Bias       float64
	Iterations int  // passes made
	Converged  bool // false when MaxIter stopped it
}

// Decision returns W.x + Bias.
func (m *LinearSVM) Decision(x []float64) float64 { return dot(m.W, x) + m.Bias }

// TrainSVM fits an L2-regularised, squared-hinge linear SVM to the given rows of x (all
// rows when rows is nil), as scikit-learn's LinearSVC(penalty="l2", loss="squared_hinge",
// dual=True, intercept_scaling=1, class_weight={1: w, -1: 1}) does through liblinear: the
// intercept is the weight of a constant feature 1, regularised with the rest, and the
// solver is liblinear's dual coordinate descent with shrinking
// (solve_l2r_l1l2_svc, L2R_L2LOSS_SVC_DUAL). It minimises
//
//	1/2 |w|^2 + sum_i C_i max(0, 1 - y_i w.x_i)^2
//
// through its dual, whose optimum is unique; liblinear's random update order comes from
// Seed here, so the iterates differ from scikit-learn's but not the optimum.
func TrainSVM(x Matrix, positive []bool, rows []int, o SVMOptions) LinearSVM {
	if rows == nil {
		rows = make([]int, x.Rows)
		for i := range rows {
			rows[i] = i
		}
	}
	n, d := len(rows), x.Cols
	w := make([]float64, d+1) // w[d] weighs the constant feature: the intercept
	alpha := make([]float64, n)
	// diag is 1 / (2 C_i): the squared hinge's term on the dual's diagonal.
	diagNeg, diagPos := 0.5/o.C, 0.5/(o.C*o.PositiveWeight)
	qd := make([]float64, n)
	y := make([]float64, n)
	diag := make([]float64, n)
	for s, i := range rows {
		xi := x.Row(i)
		y[s], diag[s] = -1, diagNeg
		if positive[i] {
			y[s], diag[s] = 1, diagPos
		}
		qd[s] = diag[s] + dot(xi, xi) + 1
	}
	index := make([]int, n)
	for s := range index {
		index[s] = s
	}
	rng := rand.New(rand.NewPCG(o.Seed, 0x73766d))
	active := n
	pgMaxOld, pgMinOld := math.Inf(1), math.Inf(-1)
	m := LinearSVM{}
	for m.Iterations < o.MaxIter {
		pgMaxNew, pgMinNew := math.Inf(-1), math.Inf(1)
		for s := 0; s < active; s++ {
			j := s + rng.IntN(active-s)
			index[s], index[j] = index[j], index[s]
		}
		for s := 0; s < active; s++ {
			k := index[s]
			xi := x.Row(rows[k])
			g := y[k]*(dot(w[:d], xi)+w[d]) - 1 + alpha[k]*diag[k]
			pg := 0.0
			if alpha[k] == 0 {
				if g > pgMaxOld { // shrink: this one stays at the bound for now
					active--
					index[s], index[active] = index[active], index[s]
					s--
					continue
				}
				if g < 0 {
					pg = g
				}
			} else {
				pg = g
			}
			pgMaxNew, pgMinNew = math.Max(pgMaxNew, pg), math.Min(pgMinNew, pg)
			if math.Abs(pg) > 1e-12 {
				old := alpha[k]
				alpha[k] = math.Max(old-g/qd[k], 0)
				step := (alpha[k] - old) * y[k]
				axpy(w[:d], step, xi)
				w[d] += step
			}
		}
		m.Iterations++
		if pgMaxNew-pgMinNew <= o.Tol {
			if active == n {
				m.Converged = true
				break
			}
			// Converged on the active set: check every coordinate again.
			active = n
			pgMaxOld, pgMinOld = math.Inf(1), math.Inf(-1)
			continue
		}
		pgMaxOld, pgMinOld = pgMaxNew, pgMinNew
		if pgMaxOld <= 0 {
			pgMaxOld = math.Inf(1)
		}
		if pgMinOld >= 0 {
			pgMinOld = math.Inf(-1)
		}
	}
	m.W, m.Bias = w[:d], w[d]
	return m
}

// PrimalObjective is the function TrainSVM minimises, at (w, bias), over the given rows.
func PrimalObjective(x Matrix, positive []bool, rows []int, o SVMOptions, w []float64, bias float64) float64 {
	f := 0.5 * (dot(w, w) + bias*bias)
	for _, i := range rows {
		y, c := -1.0, o.C
		if positive[i] {
			y, c = 1, o.C*o.PositiveWeight
		}
		if margin := 1 - y*(dot(w, x.Row(i))+bias); margin > 0 {
			f += c * margin * margin
		}
	}
	return f
}

func dot(a, b []float64) float64 {
	b = b[:len(a)]
	var s0, s1, s2, s3 float64
	i := 0
	for ; i+4 <= len(a); i += 4 {
		s0 += a[i] * b[i]
		s1 += a[i+1] * b[i+1]
		s2 += a[i+2] * b[i+2]
		s3 += a[i+3] * b[i+3]
	}
	for ; i < len(a); i++ {
		s0 += a[i] * b[i]
	}
	return (s0 + s1) + (s2 + s3)
}

// axpy adds a * x to y.
func axpy(y []float64, a float64, x []float64) {
	x = x[:len(y)]
	for i, v := range x {
		y[i] += a * v
	}
}

package evaluators

import (
	"math"
	"math/rand/v2"
	"sort"
	"testing"
)

func randomFeatures(n, dim int, seed uint64) Features {
	rng := rand.New(rand.NewPCG(seed, 5))
	f := Features{N: n, Dim: dim, Data: make([]float32, n*dim)}
	for i := range f.Data {
		f.Data[i] = float32(rng.NormFloat64())
	}
	return f
}

// bruteForce ranks the whole database for one query in float64.
func bruteForce(q []float32, db Features, k int) []Neighbour {
	all := make([]Neighbour, db.N)
	sims := make([]float64, db.N)
	for j := range db.N {
		var s float64
		for d, v := range db.Row(j) {
			s += float64(v) * float64(q[d])
		}
		all[j], sims[j] = Neighbour{Index: j, Sim: float32(s)}, s
	}
	sort.SliceStable(all, func(a, b int) bool { return sims[all[a].Index] > sims[all[b].Index] })
	return all[:k]
}

// The blocked search finds what ranking every database vector finds, with shapes that
// leave partial tiles and panels, and several database blocks.
func TestTopKMatchesBruteForce(t *testing.T) {
	for _, c := range []struct{ nq, ndb, dim, k int }{
		{1, 5, 3, 5}, {13, 1000, 37, 20}, {50, 3001, 64, 200}, {7, 70000, 65, 10},
	} {
		q, db := randomFeatures(c.nq, c.dim, 1), randomFeatures(c.ndb, c.dim, 2)
		got := TopK(q, db, c.k)
		for i := range c.nq {
			want := bruteForce(q.Row(i), db, c.k)
			if len(got[i]) != c.k {
				t.Fatalf("%+v: query %d has %d neighbours", c, i, len(got[i]))
			}
			for r := range want {
				g, w := got[i][r], want[r]
				if g.Index != w.Index && math.Abs(float64(g.Sim-w.Sim)) > 1e-4 {
					t.Fatalf("%+v: query %d, rank %d: %+v, brute force %+v", c, i, r, g, w)
				}
				if math.Abs(float64(g.Sim-w.Sim)) > 1e-4*math.Max(1, math.Abs(float64(w.Sim))) {
					t.Fatalf("%+v: query %d, rank %d: product %g, brute force %g", c, i, r, g.Sim, w.Sim)
				}
			}
		}
	}
}

// Equal products: the lower index ranks first and keeps a contested last place.
func TestTopKTies(t *testing.T) {
	db := Features{N: 5, Dim: 2, Data: []float32{0, 1, 1, 0, 0, 1, 1, 0, 0.5, 0}}
	q := Features{N: 1, Dim: 2, Data: []float32{1, 0}}
	got := TopK(q, db, 2) // products 0, 1, 0, 1, 0.5
	if got[0][0].Index != 1 || got[0][1].Index != 3 {
		t.Errorf("%+v, want indices 1 then 3", got[0])
	}
	got = TopK(q, db, 1)
	if got[0][0].Index != 1 {
		t.Errorf("%+v, want index 1", got[0])
	}
}

// The FMA kernel and the Go code compute a tile's products, up to rounding.
func TestTileKernels(t *testing.T) {
	const dim = 19
	a, b := randomFeatures(tileRows, dim, 3).Data, randomFeatures(tileCols, dim, 4).Data
	kernels := map[string]func(c []float32){"Go": func(c []float32) { tileGo(c, tileCols, a, b, dim) }}
	if hasFMA {
		kernels["FMA"] = func(c []float32) { tileFMA(&c[0], tileCols, &a[0], &b[0], dim) }
	}
	for name, kernel := range kernels {
		c := make([]float32, tileRows*tileCols)
		kernel(c)
		for i := range tileRows {
			for j := range tileCols {
				var s float64
				for d := range dim {
					s += float64(a[d*tileRows+i]) * float64(b[d*tileCols+j])
				}
				if math.Abs(float64(c[i*tileCols+j])-s) > 1e-5 {
					t.Errorf("%s: (%d, %d): %g, want %g", name, i, j, c[i*tileCols+j], s)
				}
			}
		}
	}
}

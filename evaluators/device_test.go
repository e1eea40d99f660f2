package evaluators

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"sync"
	"testing"

	"github.com/gomlx/gomlx/backends"

	"github.com/goselfsup/goselfsup/engine/backend"
)

var deviceBackend = sync.OnceValues(func() (backends.Backend, error) { return backend.New("go") })

// testBackend is the pure-Go backend (with goselfsup's filled-in ops), shared by the tests.
func testBackend(t *testing.T) backends.Backend {
	t.Helper()
	b, err := deviceBackend()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// matchesTopK checks that the search on the device finds TopK's neighbours, in TopK's
// order, with the same products up to 1e-5.
func matchesTopK(t *testing.T, name string, b backends.Backend, q, db Features, k, chunkFloats int) {
	t.Helper()
	got, err := topKOnDevice(b, q, db, k, chunkFloats)
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	want := TopK(q, db, k)
	if len(got) != len(want) {
		t.Fatalf("%s: %d results, TopK has %d", name, len(got), len(want))
	}
	for i := range want {
		if len(got[i]) != len(want[i]) {
			t.Fatalf("%s: query %d: %d neighbours, TopK has %d", name, i, len(got[i]), len(want[i]))
		}
		for r := range want[i] {
			g, w := got[i][r], want[i][r]
			if g.Index != w.Index || math.Abs(float64(g.Sim-w.Sim)) > 1e-5 {
				t.Fatalf("%s: query %d, rank %d: %+v, TopK %+v", name, i, r, g, w)
			}
		}
	}
}

// A case worked out by hand: equal products rank by index, and the lower index keeps a
// contested last place.
func TestTopKOnDeviceByHand(t *testing.T) {
	db := Features{N: 5, Dim: 2, Data: []float32{1, 0, 0, 1, 1, 1, 2, 0, -1, 0}}
	q := Features{N: 2, Dim: 2, Data: []float32{1, 0, 0, 1}}
	// Products: query 0: 1, 0, 1, 2, -1; query 1: 0, 1, 1, 0, 0.
	got, err := TopKOnDevice(testBackend(t), q, db, 3)
	if err != nil {
		t.Fatal(err)
	}
	want := [][]Neighbour{
		{{Index: 3, Sim: 2}, {Index: 0, Sim: 1}, {Index: 2, Sim: 1}},
		{{Index: 1, Sim: 1}, {Index: 2, Sim: 1}, {Index: 0, Sim: 0}},
	}
	for i := range want {
		if !slices.Equal(got[i], want[i]) {
			t.Errorf("query %d: %+v, want %+v", i, got[i], want[i])
		}
	}
}

// Random features: a database smaller than one block, partial last blocks, k above the
// number of blocks, k above 128 (a block's worth) with fewer blocks than k and with more,
// k above the database's size, and several chunks of queries, the last one padded.
func TestTopKOnDeviceMatchesTopK(t *testing.T) {
	b := testBackend(t)
	for _, c := range []struct{ nq, ndb, dim, k, chunkFloats int }{
		{3, 50, 5, 7, deviceChunkFloats},            // one partial block
		{9, 300, 16, 10, deviceChunkFloats},         // 3 blocks, the last partial; k > blocks
		{4, 1000, 6, 200, deviceChunkFloats},        // k > 128 and > the 8 blocks
		{3, 20000, 4, 150, deviceChunkFloats},       // k > 128, 157 blocks: 150 rounds
		{4, 30, 3, 50, deviceChunkFloats},           // k > N
		{23, 260, 8, 5, 5 * 384},                    // chunks of 5 queries, the last 3 + 2 padding
		{7, 256, 8, 3, 1},                           // chunks of 1 query, whole blocks only
		{2, 129, 8, 1, deviceChunkFloats},           // k = 1, a block of one vector
		{5, 640, 32, 64, deviceChunkFloats},         // whole blocks only
		{6, 900, 12, 33, 2 * 1024},                  // 2 queries a chunk
		{1, 128 * 3, 4, 128 * 3, deviceChunkFloats}, // k = N
	} {
		name := fmt.Sprintf("%+v", c)
		q, db := randomFeatures(c.nq, c.dim, 7), randomFeatures(c.ndb, c.dim, 8)
		matchesTopK(t, name, b, q, db, c.k, c.chunkFloats)
	}
}

// All products negative: the padding of the last block must not lift its maximum.
func TestTopKOnDeviceNegativeProducts(t *testing.T) {
	q, db := randomFeatures(4, 6, 12), randomFeatures(300, 6, 13)
	for i := range q.Data {
		q.Data[i] = float32(math.Abs(float64(q.Data[i])))
	}
	for i := range db.Data {
		db.Data[i] = -float32(math.Abs(float64(db.Data[i])))
	}
	for _, k := range []int{1, 2, 5} {
		matchesTopK(t, fmt.Sprintf("k = %d", k), testBackend(t), q, db, k, deviceChunkFloats)
	}
}

// Small integer features: products are exact on both sides and equal products abound, so
// every rank, the k-th place included, is decided by the tie rule.
func TestTopKOnDeviceIntegerTies(t *testing.T) {
	b := testBackend(t)
	rng := rand.New(rand.NewPCG(3, 9))
	ints := func(n, dim int) Features {
		f := Features{N: n, Dim: dim, Data: make([]float32, n*dim)}
		for i := range f.Data {
			f.Data[i] = float32(rng.IntN(5) - 2)
		}
		return f
	}
	for _, c := range []struct{ nq, ndb, dim, k int }{{20, 700, 6, 37}, {10, 300, 2, 130}, {5, 1000, 3, 3}} {
		matchesTopK(t, fmt.Sprintf("%+v", c), b, ints(c.nq, c.dim), ints(c.ndb, c.dim), c.k, 4*1024)
	}
}

// Duplicate database rows across block boundaries, at the k-th place and at a contested
// block maximum: blocks 0 and 3 (the last, partial) both have maximum 5, and only block 0's
// vectors belong in the top 3.
func TestTopKOnDeviceDuplicatesAcrossBlocks(t *testing.T) {
	const n, dim = 400, 8
	db := randomFeatures(n, dim, 11)
	for i := range db.Data {
		db.Data[i] *= 0.01 // products below 0.1 for the queries below
	}
	set := func(row int, v float32) {
		clear(db.Row(row))
		db.Row(row)[0] = v
	}
	for _, row := range []int{40, 127, 128, 256, 390} { // blocks 0, 0, 1, 2, 3
		set(row, 5)
	}
	set(200, 9)  // block 1
	set(300, 10) // block 2
	q := Features{N: 3, Dim: dim, Data: make([]float32, 3*dim)}
	q.Row(0)[0] = 1
	q.Row(1)[0], q.Row(1)[1] = 1, 0.5
	q.Row(2)[0] = -1
	b := testBackend(t)
	for k, want := range map[int][]int{
		1: {300}, 3: {300, 200, 40}, 4: {300, 200, 40, 127}, 5: {300, 200, 40, 127, 128},
		7: {300, 200, 40, 127, 128, 256, 390},
	} {
		got, err := TopKOnDevice(b, q, db, k)
		if err != nil {
			t.Fatal(err)
		}
		var idx []int
		for _, nb := range got[0] {
			idx = append(idx, nb.Index)
		}
		if !slices.Equal(idx, want) {
			t.Errorf("k = %d: %v, want %v", k, idx, want)
		}
		matchesTopK(t, fmt.Sprintf("k = %d", k), b, q, db, k, deviceChunkFloats)
	}
}

// Empty or mismatched inputs are errors, not panics; k <= 0 finds nothing.
func TestTopKOnDeviceErrors(t *testing.T) {
	b := testBackend(t)
	f := randomFeatures(3, 4, 1)
	for name, c := range map[string]struct {
		b     backends.Backend
		q, db Features
	}{
		"no backend":     {nil, f, f},
		"no queries":     {b, Features{Dim: 4}, f},
		"no database":    {b, f, Features{Dim: 4}},
		"dimensions":     {b, f, randomFeatures(3, 5, 1)},
		"short data":     {b, f, Features{N: 3, Dim: 4, Data: make([]float32, 11)}},
		"zero dimension": {b, Features{N: 1}, Features{N: 1}},
	} {
		if _, err := TopKOnDevice(c.b, c.q, c.db, 2); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
	got, err := TopKOnDevice(b, f, f, 0)
	if err != nil || len(got) != 3 || got[0] != nil {
		t.Errorf("k = 0: %v, %v", got, err)
	}
}

// A backend that fails (here: finalized) gives an error, GoMLX's panics included.
func TestTopKOnDeviceBackendFailure(t *testing.T) {
	b, err := backend.New("go")
	if err != nil {
		t.Fatal(err)
	}
	b.Finalize()
	f := randomFeatures(3, 4, 1)
	if _, err := TopKOnDevice(b, f, f, 2); err == nil {
		t.Error("no error from a finalized backend")
	} else {
		t.Log(err)
	}
}

// panickingBackend panics when a program is built, as GoMLX does on errors.
type panickingBackend struct{ backends.Backend }

func (panickingBackend) Builder(string) backends.Builder { panic("boom") }

// A backend that panics gives an error.
func TestTopKOnDeviceBackendPanic(t *testing.T) {
	f := randomFeatures(3, 4, 1)
	if _, err := TopKOnDevice(panickingBackend{testBackend(t)}, f, f, 2); err == nil {
		t.Error("no error from a panicking backend")
	} else {
		t.Log(err)
	}
}

package evaluators

import (
	"container/heap"
	"errors"
	"fmt"
	"math"
	"runtime"
	"sort"
	"sync"

	"github.com/gomlx/gomlx/backends"
	"github.com/gomlx/gomlx/pkg/core/dtypes"
	"github.com/gomlx/gomlx/pkg/core/graph"
	"github.com/gomlx/gomlx/pkg/core/shapes"
	"github.com/gomlx/gomlx/pkg/core/tensors"
)

// The search on a GoMLX backend (TopKOnDevice) splits the database into blocks of
// deviceBlock consecutive vectors. A chunk of queries' products with the whole padded
// database take at most deviceChunkFloats floats on the device, and a chunk holds at most
// deviceMaxChunk queries.
const (
	deviceBlock       = 128
	deviceChunkFloats = 1 << 28
	deviceMaxChunk    = 4096
)

// TopKOnDevice returns what TopK returns — for each query, the k database vectors of highest
// inner product, highest first, the lower index first among equal products and kept when
// the k-th place is contested — computing the products on the backend b (XLA on a GPU, say).
// k larger than the database is the database's size; k <= 0 gives no neighbours.
//
// GoMLX has no top-k or sort, so the device narrows the search exactly and the host
// finishes it. The database, padded to whole blocks of 128 vectors, goes to the device once;
// then for each chunk of queries one compiled program computes the products, each block's
// maximum, and picks the kb = min(k, blocks) blocks of largest maxima (kb rounds of ArgMax,
// the first block among equal maxima, each round masking the block it picked), and returns
// those blocks' products. The k-th largest of the chosen maxima is at most the k-th largest
// product, and blocks are ranges of consecutive indices, so the chosen blocks hold the top
// k products, with the same tie rule; the host picks them from the kb*128 candidates.
//
// The rounds are unrolled in the program, so it is meant for k up to a few hundred. Products
// must be finite (the device uses -inf to mask). Errors of the backend, including GoMLX's
// panics, come back as errors.
func TopKOnDevice(b backends.Backend, queries, database Features, k int) ([][]Neighbour, error) {
	return topKOnDevice(b, queries, database, k, deviceChunkFloats)
}

// topKOnDevice is TopKOnDevice with chunks of queries of at most chunkFloats products
// (tests make chunks small).
func topKOnDevice(b backends.Backend, queries, database Features, k, chunkFloats int) (out [][]Neighbour, err error) {
	if b == nil {
		return nil, errors.New("top-k on device: no backend")
	}
	if err := checkFeatures("queries", queries); err != nil {
		return nil, err
	}
	if err := checkFeatures("database", database); err != nil {
		return nil, err
	}
	if queries.Dim != database.Dim {
		return nil, fmt.Errorf("top-k on device: queries of %d dimensions, database of %d", queries.Dim, database.Dim)
	}
	k = min(k, database.N)
	out = make([][]Neighbour, queries.N)
	if k <= 0 {
		return out, nil
	}

	var db *tensors.Tensor
	var exec *graph.Exec
	var selecting sync.WaitGroup
	defer func() {
		selecting.Wait()
		if r := recover(); r != nil {
			out, err = nil, fmt.Errorf("top-k on device: %v", r)
		}
		if db != nil {
			_ = db.FinalizeAll()
		}
		if exec != nil {
			exec.Finalize()
		}
	}()

	n, dim := database.N, database.Dim
	nb := (n + deviceBlock - 1) / deviceBlock
	npad := nb * deviceBlock
	kb := min(k, nb)
	// Chunks of equal size, the last one padded with zero queries: one program serves all.
	maxQ := min(max(chunkFloats/npad, 1), deviceMaxChunk)
	chunks := (queries.N + maxQ - 1) / maxQ
	qc := (queries.N + chunks - 1) / chunks

	db = tensors.FromShape(shapes.Make(dtypes.Float32, npad, dim))
	if err := tensors.MutableFlatData(db, func(flat []float32) { copy(flat, database.Data[:n*dim]) }); err != nil {
		return nil, fmt.Errorf("top-k on device: %w", err)
	}
	if err := db.MaterializeOnDevice(b, false, 0); err != nil {
		return nil, fmt.Errorf("top-k on device: uploading the database: %w", err)
	}
	db.FinalizeLocal()

	exec, err = graph.NewExec(b, func(q, x *graph.Node) (*graph.Node, *graph.Node) {
		return blockCandidates(q, x, n, kb)
	})
	if err != nil {
		return nil, fmt.Errorf("top-k on device: %w", err)
	}
	// The host selects chunk c's neighbours while the device computes chunk c+1.
	for c := range chunks {
		q0 := c * qc
		if q0 >= queries.N {
			break
		}
		q1 := min(q0+qc, queries.N)
		sims, blocks, err := runChunk(exec, queries.Data[q0*dim:q1*dim], qc, dim, db)
		if err != nil {
			return nil, fmt.Errorf("top-k on device: %w", err)
		}
		selectChunk(&selecting, out[q0:q1], sims, blocks, kb, n, k)
	}
	return out, nil
}

// runChunk runs the device's program on a chunk of queries (rows of dim values), padded
// with zeros to qc queries, and copies its outputs to the host.
func runChunk(exec *graph.Exec, queries []float32, qc, dim int, db *tensors.Tensor) (sims []float32, blocks []int32, err error) {
	qt := tensors.FromShape(shapes.Make(dtypes.Float32, qc, dim))
	defer func() { _ = qt.FinalizeAll() }()
	if err := tensors.MutableFlatData(qt, func(flat []float32) { copy(flat, queries) }); err != nil {
		return nil, nil, err
	}
	outs, err := exec.Exec(qt, db)
	if err != nil {
		return nil, nil, err
	}
	defer func() {
		for _, t := range outs {
			_ = t.FinalizeAll()
		}
	}()
	if len(outs) != 2 {
		return nil, nil, fmt.Errorf("the program returned %d outputs, want 2", len(outs))
	}
	if sims, err = tensors.CopyFlatData[float32](outs[0]); err != nil {
		return nil, nil, err
	}
	blocks, err = tensors.CopyFlatData[int32](outs[1])
	return sims, blocks, err
}

// checkFeatures reports empty or inconsistent features.
func checkFeatures(what string, f Features) error {
	switch {
	case f.N <= 0 || f.Dim <= 0:
		return fmt.Errorf("top-k on device: %s: %d vectors of %d dimensions", what, f.N, f.Dim)
	case len(f.Data) < f.N*f.Dim:
		return fmt.Errorf("top-k on device: %s: %d values for %d vectors of %d dimensions", what, len(f.Data), f.N, f.Dim)
	}
	return nil
}

// blockCandidates is the device's program: for queries q [Q, dim] and the padded database x
// [Npad, dim] whose first n rows are real, the products of the kb blocks of largest maxima,
// [Q, kb, deviceBlock], and those blocks' indices, [Q, kb], largest maximum first, the lower
// block first among equal maxima.
func blockCandidates(q, x *graph.Node, n, kb int) (*graph.Node, *graph.Node) {
	g := q.Graph()
	nq, npad := q.Shape().Dimensions[0], x.Shape().Dimensions[0]
	nb := npad / deviceBlock
	negInf := graph.Scalar(g, dtypes.Float32, math.Inf(-1))

	sims := graph.DotGeneral(q, []int{1}, nil, x, []int{1}, nil) // [Q, Npad]
	if npad > n {
		col := graph.Iota(g, shapes.Make(dtypes.Int32, nq, npad), 1)
		sims = graph.Where(graph.LessThan(col, graph.Scalar(g, dtypes.Int32, n)), sims, negInf)
	}
	blocks := graph.Reshape(sims, nq, nb, deviceBlock)
	maxima := graph.ReduceMax(blocks, 2) // [Q, NB]

	blockIota := graph.Iota(g, shapes.Make(dtypes.Int32, nq, nb), 1)
	chosen := make([]*graph.Node, kb)
	for i := range kb {
		best := graph.InsertAxes(graph.ArgMax(maxima, 1, dtypes.Int32), 1) // [Q, 1]: the first of equal maxima
		chosen[i] = best
		if i < kb-1 {
			maxima = graph.Where(graph.Equal(blockIota, graph.BroadcastToDims(best, nq, nb)), negInf, maxima)
		}
	}
	blockIdx := graph.Concatenate(chosen, 1) // [Q, kb]
	queryIdx := graph.Iota(g, shapes.Make(dtypes.Int32, nq, kb), 0)
	gathered := graph.Gather(blocks, graph.Stack([]*graph.Node{queryIdx, blockIdx}, 2)) // [Q, kb, 128]
	return gathered, blockIdx
}

// selectChunk starts picking, in the background on every core, the k best of each query's
// candidates: sims [len(out), kb, deviceBlock] (queries beyond len(out) are padding) from
// blocks [len(out), kb]; database indices n and above are padding.
func selectChunk(wg *sync.WaitGroup, out [][]Neighbour, sims []float32, blocks []int32, kb, n, k int) {
	nb := (n + deviceBlock - 1) / deviceBlock
	workers := min(runtime.GOMAXPROCS(0), len(out))
	per := (len(out) + workers - 1) / workers
	for w := 0; w*per < len(out); w++ {
		wg.Add(1)
		go func(q0, q1 int) {
			defer wg.Done()
			seen := make([]bool, nb)
			for q := q0; q < q1; q++ {
				out[q] = selectCandidates(sims[q*kb*deviceBlock:(q+1)*kb*deviceBlock], blocks[q*kb:(q+1)*kb], n, k, seen)
			}
		}(w*per, min((w+1)*per, len(out)))
	}
}

// selectCandidates returns the k best of one query's candidates, ordered as TopK orders
// them. Candidates come block by block, not in index order, so a candidate equal to the
// worst kept one replaces it when its index is lower. seen (one entry per block, all
// false) guards against a block picked twice; it is left all false.
func selectCandidates(sims []float32, blocks []int32, n, k int, seen []bool) []Neighbour {
	h := make(minHeap, 0, k)
	for b, blk := range blocks {
		if blk < 0 || int(blk) >= len(seen) || seen[blk] {
			continue
		}
		seen[blk] = true
		base := int(blk) * deviceBlock
		for j, s := range sims[b*deviceBlock : (b+1)*deviceBlock] {
			idx := base + j
			if idx >= n {
				break
			}
			switch {
			case len(h) < k:
				heap.Push(&h, Neighbour{Index: idx, Sim: s})
			case s > h[0].Sim || s == h[0].Sim && idx < h[0].Index:
				h[0] = Neighbour{Index: idx, Sim: s}
				heap.Fix(&h, 0)
			}
		}
	}
	for _, blk := range blocks {
		if blk >= 0 && int(blk) < len(seen) {
			seen[blk] = false
		}
	}
	sort.Slice(h, func(a, b int) bool { return h[a].Sim > h[b].Sim || h[a].Sim == h[b].Sim && h[a].Index < h[b].Index })
	return h
}

package evaluators

import (
	"container/heap"
	"runtime"
	"sort"
	"sync"
)

// Features is a dense row-major matrix of float32 feature vectors: row i is
// Data[i*Dim : (i+1)*Dim].
type Features struct {
	N, Dim int
	Data   []float32
}

// Row returns vector i.
func (f Features) Row(i int) []float32 { return f.Data[i*f.Dim : (i+1)*f.Dim : (i+1)*f.Dim] }

// FromRows copies vectors of equal length into Features.
func FromRows(rows [][]float32) Features {
	if len(rows) == 0 {
		return Features{}
	}
	f := Features{N: len(rows), Dim: len(rows[0]), Data: make([]float32, 0, len(rows)*len(rows[0]))}
	for _, r := range rows {
		f.Data = append(f.Data, r...)
	}
	return f
}

// The exhaustive search computes query x database inner products a tile at a time: tileRows
// queries against tileCols database vectors, both packed so that the inner loop reads them
// in order (queries interleaved by dimension, database vectors in panels of tileCols,
// likewise), as BLAS's sgemm does; an AVX2/FMA kernel computes a tile where the CPU has
// one. Database blocks of blockCols vectors are packed once per chunk of queries.
const (
	tileRows    = 6
	tileCols    = 16
	blockFloats = 1 << 22 // a packed database block: 16 MB
	queryChunk  = 4096
)

// blockCols is how many database vectors of dim dimensions a block packs.
func blockCols(dim int) int { return max(tileCols, blockFloats/max(dim, 1)/tileCols*tileCols) }

// TopK returns, for each query, the k database vectors of highest inner product, highest
// first; among equal products the lower index comes first (and is kept when the k-th place
// is contested). It uses every core.
func TopK(queries, database Features, k int) [][]Neighbour {
	k = min(k, database.N)
	out := make([][]Neighbour, queries.N)
	if k <= 0 {
		return out
	}
	heaps := make([]minHeap, queries.N)
	for q0 := 0; q0 < queries.N; q0 += queryChunk {
		q1 := min(q0+queryChunk, queries.N)
		packedQ := pack(queries, q0, q1, tileRows)
		for j0 := 0; j0 < database.N; j0 += blockCols(database.Dim) {
			j1 := min(j0+blockCols(database.Dim), database.N)
			packedX := pack(database, j0, j1, tileCols)
			searchBlock(packedQ, q0, q1, packedX, j0, j1, database.Dim, k, heaps)
		}
	}
	for q, h := range heaps {
		sort.Slice(h, func(a, b int) bool { return h[a].Sim > h[b].Sim || h[a].Sim == h[b].Sim && h[a].Index < h[b].Index })
		out[q] = h
	}
	return out
}

// pack lays vectors i0..i1 out in panels of width vectors, each dimension's width values
// together (queries in panels of tileRows, database vectors in panels of tileCols);
// missing vectors of the last panel are zeros.
func pack(f Features, i0, i1, width int) []float32 {
	panels := (i1 - i0 + width - 1) / width
	out := make([]float32, panels*width*f.Dim)
	for i := i0; i < i1; i++ {
		p, c := (i-i0)/width, (i-i0)%width
		base := p*width*f.Dim + c
		for d, v := range f.Row(i) {
			out[base+d*width] = v
		}
	}
	return out
}

// searchBlock folds the products of queries q0..q1 with database vectors j0..j1 into the
// queries' heaps, the query panels shared out among the cores.
func searchBlock(packedQ []float32, q0, q1 int, packedX []float32, j0, j1, dim, k int, heaps []minHeap) {
	panels := (q1 - q0 + tileRows - 1) / tileRows
	xPanels := (j1 - j0 + tileCols - 1) / tileCols
	width := xPanels * tileCols
	var wg sync.WaitGroup
	next := make(chan int)
	for range min(runtime.GOMAXPROCS(0), panels) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sims := make([]float32, tileRows*width)
			for p := range next {
				a := packedQ[p*tileRows*dim : (p+1)*tileRows*dim]
				for xp := range xPanels {
					tile(sims[xp*tileCols:], width, a, packedX[xp*tileCols*dim:(xp+1)*tileCols*dim], dim)
				}
				for i := range tileRows {
					q := q0 + p*tileRows + i
					if q >= q1 {
						break
					}
					row := sims[i*width : i*width+(j1-j0)]
					h := heaps[q]
					for j, s := range row {
						switch {
						case len(h) < k:
							heap.Push(&h, Neighbour{Index: j0 + j, Sim: s})
						case s > h[0].Sim:
							h[0] = Neighbour{Index: j0 + j, Sim: s}
							heap.Fix(&h, 0)
						}
					}
					heaps[q] = h
				}
			}
		}()
	}
	for p := range panels {
		next <- p
	}
	close(next)
	wg.Wait()
}

// tile computes the tileRows x tileCols products of a query panel and a database panel
// into c (row stride ldc).
func tile(c []float32, ldc int, a, b []float32, dim int) {
	if hasFMA {
		tileFMA(&c[0], ldc, &a[0], &b[0], dim)
		return
	}
	tileGo(c, ldc, a, b, dim)
}

// tileGo is tile in Go.
func tileGo(c []float32, ldc int, a, b []float32, dim int) {
	var acc [tileRows][tileCols]float32
	for d := range dim {
		av := a[d*tileRows : d*tileRows+tileRows : d*tileRows+tileRows]
		bv := b[d*tileCols : d*tileCols+tileCols : d*tileCols+tileCols]
		for i, x := range av {
			for j, y := range bv {
				acc[i][j] += x * y
			}
		}
	}
	for i := range tileRows {
		copy(c[i*ldc:i*ldc+tileCols], acc[i][:])
	}
}

// Neighbour is a database vector found by TopK: its index and its inner product with the
// query.
type Neighbour struct {
	Index int
	Sim   float32
}

// minHeap keeps the k largest similarities seen, smallest on top.
type minHeap []Neighbour

func (h minHeap) Len() int { return len(h) }
func (h minHeap) Less(i, j int) bool {
	return h[i].Sim < h[j].Sim || h[i].Sim == h[j].Sim && h[i].Index > h[j].Index
}
func (h minHeap) Swap(i, j int) { h[i], h[j] = h[j], h[i] }
func (h *minHeap) Push(x any)   { *h = append(*h, x.(Neighbour)) }
func (h *minHeap) Pop() any {
	old := *h
	x := old[len(old)-1]
	*h = old[:len(old)-1]
	return x
}

package benchmark

import (
	"encoding/json"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"text/tabwriter"
	"time"

	"github.com/gomlx/gomlx/backends"

	"github.com/goselfsup/goselfsup/engine/backend"
	"github.com/goselfsup/goselfsup/evaluators"
	"github.com/goselfsup/goselfsup/internal/cmdline"
	"github.com/goselfsup/goselfsup/internal/npy"
)

// benchKNN times the exhaustive inner-product search behind the weighted kNN here and in
// FAISS (IndexFlatIP), on the same L2-normalised vectors; with --backend, also on a GoMLX
// backend (evaluators.TopKOnDevice).
func benchKNN(args []string, stdout, stderr io.Writer) int {
	fs := newFlags("knn", stderr)
	nDB := fs.Int("database", 1_000_000, "database vectors")
	nQ := fs.Int("queries", 10_000, "queries")
	dim := fs.Int("dim", 128, "dimensions")
	k := fs.Int("k", 200, "neighbours per query")
	bk := fs.String("backend", "", "also time the search on this GoMLX backend (go, xla:cuda, xla:/path/to/pjrt_plugin.so); empty: the CPU search only")
	if _, err := parseArgs(fs, args, stdout); err != nil {
		return cmdline.ExitCode(err)
	}
	var device backends.Backend
	if *bk != "" {
		b, err := backend.New(*bk)
		if err != nil {
			report(stderr, err)
			return exitFailed
		}
		defer b.Finalize()
		device = b
	}
	python, script, err := reference("benchmarks/knn_reference.py", "faiss", "numpy")
	if err != nil {
		report(stderr, err)
		return exitFailed
	}
	dir, err := os.MkdirTemp("", "goselfsup-knn-*")
	if err != nil {
		report(stderr, err)
		return exitFailed
	}
	defer os.RemoveAll(dir)

	fmt.Fprintf(stderr, "drawing %d database vectors and %d queries of %d dimensions...\n", *nDB, *nQ, *dim)
	db, q := unitVectors(*nDB, *dim, 1), unitVectors(*nQ, *dim, 2)
	for name, f := range map[string]evaluators.Features{"db.npy": db, "q.npy": q} {
		if err := writeNPYFile(filepath.Join(dir, name), []int{f.N, f.Dim}, f.Data); err != nil {
			report(stderr, err)
			return exitFailed
		}
	}
	fmt.Fprintf(stderr, "FAISS IndexFlatIP...\n")
	out, err := exec.Command(python, script, "search", dir, fmt.Sprint(*k)).Output()
	if err != nil {
		report(stderr, fmt.Errorf("the FAISS reference: %w", err))
		return exitFailed
	}
	var ref struct {
		Search  float64 `json:"search_seconds"`
		Threads int     `json:"threads"`
		Version string  `json:"faiss"`
	}
	if err := json.Unmarshal(out, &ref); err != nil {
		report(stderr, fmt.Errorf("the FAISS reference printed %q", out))
		return exitFailed
	}
	f, err := os.Open(filepath.Join(dir, "faiss_i.npy"))
	if err != nil {
		report(stderr, err)
		return exitFailed
	}
	_, faissIDs, err := npy.Read[int64](f)
	f.Close()
	if err != nil {
		report(stderr, err)
		return exitFailed
	}

	fmt.Fprintf(stderr, "goselfsup TopK on %d cores...\n", runtime.GOMAXPROCS(0))
	t0 := time.Now()
	ours := evaluators.TopK(q, db, *k)
	seconds := time.Since(t0).Seconds()

	// Agreement: the same set of k neighbours, or sets that differ only where the products
	// are within float32 rounding of the k-th.
	same, close := agreement(ours, func(i int) []int {
		ids := make([]int, 0, *k)
		for _, id := range faissIDs[i**k : (i+1)**k] {
			ids = append(ids, int(id))
		}
		return ids
	})

	var devSeconds float64
	var devSame, devClose int
	if device != nil {
		fmt.Fprintf(stderr, "goselfsup TopKOnDevice on %s...\n", device.Description())
		t0 := time.Now()
		onDevice, err := evaluators.TopKOnDevice(device, q, db, *k)
		devSeconds = time.Since(t0).Seconds()
		if err != nil {
			report(stderr, err)
			return exitFailed
		}
		devSame, devClose = agreement(ours, func(i int) []int {
			ids := make([]int, len(onDevice[i]))
			for j, n := range onDevice[i] {
				ids[j] = n.Index
			}
			return ids
		})
	}
	fmt.Fprintf(stdout, "Exhaustive inner-product search: %d queries, %d database vectors of %d dimensions, k = %d\n\n",
		*nQ, *nDB, *dim, *k)
	tw := tabwriter.NewWriter(stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "\tseconds\tqueries/s")
	fmt.Fprintf(tw, "FAISS %s IndexFlatIP (%d threads)\t%.2f\t%.0f\n", ref.Version, ref.Threads, ref.Search, float64(*nQ)/ref.Search)
	fmt.Fprintf(tw, "goselfsup TopK (%d cores)\t%.2f\t%.0f\n", runtime.GOMAXPROCS(0), seconds, float64(*nQ)/seconds)
	if device != nil {
		fmt.Fprintf(tw, "goselfsup TopKOnDevice (%s; upload and compilation included)\t%.2f\t%.0f\n",
			*bk, devSeconds, float64(*nQ)/devSeconds)
	}
	tw.Flush()
	fmt.Fprintf(stdout, "\nratio %.2f (FAISS's time over ours); the same %d neighbours for %d of %d queries, %d more differing only at float32 ties\n",
		ref.Search/seconds, *k, same, *nQ, close)
	details := map[string]string{"faiss": ref.Version, "same_sets": fmt.Sprint(same), "queries": fmt.Sprint(*nQ)}
	if device != nil {
		fmt.Fprintf(stdout, "on the device (%s): ratio %.2f (FAISS's time over the device's), %.2f (the CPU's over the device's); "+
			"the same %d neighbours as the CPU for %d of %d queries, %d more differing only at float32 ties\n",
			device.Description(), ref.Search/devSeconds, seconds/devSeconds, *k, devSame, *nQ, devClose)
		details["device_backend"] = *bk
		details["device_seconds"] = fmt.Sprintf("%.4f", devSeconds)
		details["device_ratio"] = fmt.Sprintf("%.4f", devSeconds/ref.Search)
		details["device_same_sets_as_cpu"] = fmt.Sprint(devSame)
		details["device_close_to_cpu"] = fmt.Sprint(devClose)
	}
	line, _ := json.Marshal(benchResult{Benchmark: "knn", Ours: seconds, Reference: ref.Search, Ratio: seconds / ref.Search,
		Unit: "s per search", Details: details})
	fmt.Fprintln(stdout, string(line))
	return exitOK
}

// agreement counts the queries whose neighbours (ours) are the same set as another search's
// (theirs(i) for query i), and those whose sets differ only where our products are within
// float32 rounding of our k-th.
func agreement(ours [][]evaluators.Neighbour, theirs func(i int) []int) (same, close int) {
	for i, nb := range ours {
		set := map[int]bool{}
		for _, id := range theirs(i) {
			set[id] = true
		}
		missing, atTie := 0, true
		for _, n := range nb {
			if !set[n.Index] {
				missing++
				atTie = atTie && math.Abs(float64(n.Sim-nb[len(nb)-1].Sim)) < 1e-5
			}
		}
		switch {
		case missing == 0:
			same++
		case atTie:
			close++
		}
	}
	return same, close
}

// unitVectors draws n Gaussian vectors of dim dimensions, L2-normalised.
func unitVectors(n, dim int, seed uint64) evaluators.Features {
	rng := rand.New(rand.NewPCG(seed, 0x6b6e6e))
	f := evaluators.Features{N: n, Dim: dim, Data: make([]float32, n*dim)}
	for i := range n {
		row := f.Row(i)
		var s float64
		for j := range row {
			v := rng.NormFloat64()
			row[j], s = float32(v), s+v*v
		}
		s = 1 / math.Sqrt(s)
		for j := range row {
			row[j] = float32(float64(row[j]) * s)
		}
	}
	return f
}

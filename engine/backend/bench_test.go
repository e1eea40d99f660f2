package backend

import (
	"math/rand/v2"
	"testing"

	"github.com/gomlx/gomlx/backends"
	"github.com/gomlx/gomlx/backends/simplego"
	. "github.com/gomlx/gomlx/pkg/core/graph"
	"github.com/gomlx/gomlx/pkg/core/tensors"
)

// BenchmarkConv3x3 compares, in one run, the pure-Go backend's own direct convolution with
// the lowering to patches times a matrix, on a forward 3x3 convolution of a batch of 64
// 24x24x16 feature maps (the demo's first stage). Report: ns/op of each; the ratio is the
// speed-up.
func BenchmarkConv3x3(b *testing.B) {
	raw, err := simplego.New("")
	if err != nil {
		b.Fatal(err)
	}
	for _, bc := range []struct {
		name    string
		backend backends.Backend
	}{{"direct", raw}, {"lowered", &filled{Backend: raw}}} {
		b.Run(bc.name, func(b *testing.B) {
			rng := rand.New(rand.NewPCG(1, 1))
			x := tensors.FromFlatDataAndDimensions(randFloat32(rng, 64*24*24*16), 64, 24, 24, 16)
			k := tensors.FromFlatDataAndDimensions(randFloat32(rng, 3*3*16*16), 3, 3, 16, 16)
			e := MustNewExec(bc.backend, func(x, k *Node) *Node {
				return ReduceAllSum(Convolve(x, k).StridePerAxis(1, 1).DilationPerAxis(1, 1).PadSame().Done())
			})
			e.MustExec(x, k)
			b.ResetTimer()
			for range b.N {
				e.MustExec(x, k)
			}
			b.ReportMetric(float64(2*64*24*24*9*16*16)*float64(b.N)/b.Elapsed().Seconds()/1e9, "GFLOP/s")
		})
	}
}

func randFloat32(rng *rand.Rand, n int) []float32 {
	out := make([]float32, n)
	for i := range out {
		out[i] = float32(rng.NormFloat64())
	}
	return out
}

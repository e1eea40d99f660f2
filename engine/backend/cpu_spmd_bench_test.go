package backend

import (
	"math/rand/v2"
	"testing"

	"github.com/gomlx/gomlx/backends"
	. "github.com/gomlx/gomlx/pkg/core/graph"
	"github.com/gomlx/gomlx/pkg/core/tensors"
)

// cnnGrads is a small CNN's gradients: two 3x3 convolutions (3 -> 16, 16 -> 32 with stride
// 2) with ReLUs, a global mean and a dense layer to 10, a squared loss.
func cnnGrads(x, k1, k2, w *Node) []*Node {
	h := Max(Convolve(x, k1).PadSame().Done(), ZerosLike(Convolve(x, k1).PadSame().Done()))
	h = Convolve(h, k2).StridePerAxis(2, 2).PadSame().Done()
	h = Max(h, ZerosLike(h))
	h = ReduceMean(h, 1, 2)
	loss := ReduceAllSum(Square(Dot(h, w)))
	return append([]*Node{loss}, Gradient(loss, k1, k2, w)...)
}

// BenchmarkDataParallel compares a small CNN's gradients for a batch of 32 32x32 images on one
// device with the same on go:devices=2, 16 images per device and the gradients summed with
// one AllReduce. The ratio of the two ns/op is the speed-up of the two devices.
func BenchmarkDataParallel(b *testing.B) {
	rng := rand.New(rand.NewPCG(1, 2))
	weights := func() []*tensors.Tensor {
		return []*tensors.Tensor{randTensor32(rng, 3, 3, 3, 16), randTensor32(rng, 3, 3, 16, 32), randTensor32(rng, 32, 10)}
	}
	b.Run("1dev-b32", func(b *testing.B) {
		e := MustNewExec(newBackend(b, "go"), func(x, k1, k2, w *Node) []*Node { return cnnGrads(x, k1, k2, w) })
		ws := weights()
		args := []any{randTensor32(rng, 32, 32, 32, 3), ws[0], ws[1], ws[2]}
		e.MustExec(args...)
		b.ResetTimer()
		for range b.N {
			e.MustExec(args...)
		}
	})
	b.Run("2dev-b16", func(b *testing.B) {
		e := MustNewExec(newBackend(b, "go:devices=2"), func(x, k1, k2, w *Node) []*Node {
			return x.Graph().Distributed().AllReduce(cnnGrads(x, k1, k2, w), backends.ReduceOpSum)
		}).SPMD(mesh(b, []int{2}, "data"))
		var args []any
		for range 2 {
			ws := weights()
			args = append(args, randTensor32(rng, 16, 32, 32, 3), ws[0], ws[1], ws[2])
		}
		e.MustExec(args...)
		b.ResetTimer()
		for range b.N {
			e.MustExec(args...)
		}
	})
}

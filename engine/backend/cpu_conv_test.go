package backend

import (
	"fmt"
	"math/rand/v2"
	"testing"

	. "github.com/gomlx/gomlx/pkg/core/graph"
)

// TestConvGradReversedKernel compares the gradients of convolutions on the CPU backend with
// and without native kernels. The input's gradient reads the reversed kernel that autodiff
// builds, which the native kernel takes unreversed (the reversal is then dead code); kernels
// of one row or column reverse one axis only.
func TestConvGradReversedKernel(t *testing.T) {
	on := pureGo(t)
	off, err := New("go:kernels=off")
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(15, 16))
	for _, tc := range []struct{ kh, kw, stride int }{{3, 3, 1}, {3, 3, 2}, {3, 1, 1}, {1, 3, 2}, {1, 1, 1}, {5, 3, 1}} {
		t.Run(fmt.Sprintf("%dx%d/%d", tc.kh, tc.kw, tc.stride), func(t *testing.T) {
			x, k := randTensor(rng, 2, 7, 6, 3), randTensor(rng, tc.kh, tc.kw, 3, 4)
			fn := func(x, k *Node) []*Node {
				y := Convolve(x, k).StridePerAxis(tc.stride, tc.stride).
					PaddingPerDim([][2]int{{tc.kh / 2, tc.kh / 2}, {tc.kw / 2, tc.kw / 2}}).Done()
				return Gradient(weighted(y, 17), x, k)
			}
			want := MustNewExec(off, fn).MustExec(cl(x), cl(k))
			got := MustNewExec(on, fn).MustExec(cl(x), cl(k))
			for i := range want {
				assertClose(t, fmt.Sprintf("gradient %d", i), flat(got[i]), flat(want[i]), 1e-10)
			}
		})
	}
}

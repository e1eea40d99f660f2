package backend

import (
	"math/rand/v2"
	"testing"

	. "github.com/gomlx/gomlx/pkg/core/graph"
	"github.com/gomlx/gomlx/pkg/core/tensors"
)

// TestScatterSink checks that scatters into a parameter give the same results with and
// without native kernels when a host step reads the parameter after the scatter was recorded
// (placeLate moves the scatters after it), and when a host step reads the scatter's result
// (they stay before it).
func TestScatterSink(t *testing.T) {
	on := pureGo(t)
	off, err := New("go:kernels=off")
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(13, 14))
	bank, q := randTensor(rng, 64, 40), randTensor(rng, 40, 30)
	upd := randTensor(rng, 5, 40)
	idx := tensors.FromFlatDataAndDimensions([]int32{3, 60, 7, 3, 0}, 5, 1)
	update := func(bank, idx, upd *Node) *Node {
		cleared := ScatterSum(bank, idx, Neg(upd), false, false)
		return ScatterSum(cleared, idx, MulScalar(upd, 2), false, false)
	}
	for name, fn := range map[string]func(bank, q, idx, upd *Node) []*Node{
		"read-after": func(bank, q, idx, upd *Node) []*Node {
			before := DotGeneral(bank, []int{1}, nil, q, []int{0}, nil) // a native product
			updated := update(bank, idx, upd)
			after := DotGeneral(bank, []int{1}, nil, Abs(q), []int{0}, nil) // reads the bank, recorded after the update
			return []*Node{updated, before, after}
		},
		"result-read": func(bank, q, idx, upd *Node) []*Node {
			updated := update(bank, idx, upd)
			return []*Node{updated, DotGeneral(updated, []int{1}, nil, q, []int{0}, nil)}
		},
	} {
		t.Run(name, func(t *testing.T) {
			ins := func() []any { return []any{cl(bank), cl(q), cl(idx), cl(upd)} }
			want := MustNewExec(off, fn).MustExec(ins()...)
			got := MustNewExec(on, fn).MustExec(ins()...)
			for i := range want {
				assertClose(t, name, flat(got[i]), flat(want[i]), 1e-12)
			}
		})
	}
}

package backend

import (
	"math/rand/v2"
	"testing"

	. "github.com/gomlx/gomlx/pkg/core/graph"
	"github.com/gomlx/gomlx/pkg/core/tensors"
)

func TestDbgDot(t *testing.T) {
	b := pureGo(t)
	off, _ := New("go:kernels=off")
	rng := rand.New(rand.NewPCG(1, 2))
	x := randTensor(rng, 40, 50)
	y := randTensor(rng, 50, 60)
	z := randTensor(rng, 60, 50)
	for name, fn := range map[string]func(x, y, z *Node) *Node{
		"nn": func(x, y, z *Node) *Node { return DotGeneral(x, []int{1}, nil, y, []int{0}, nil) },
		"tn": func(x, y, z *Node) *Node { return DotGeneral(y, []int{0}, nil, x, []int{1}, nil) },
		"nt": func(x, y, z *Node) *Node { return DotGeneral(x, []int{1}, nil, z, []int{1}, nil) },
		"tt": func(x, y, z *Node) *Node { return DotGeneral(y, []int{0}, nil, z, []int{1}, nil) },
	} {
		got := MustExecOnce(b, fn, cl(x), cl(y), cl(z))
		want := MustExecOnce(off, fn, cl(x), cl(y), cl(z))
		assertClose(t, name, flat(got), flat(want), 1e-9)
	}
}

func cl(t *tensors.Tensor) *tensors.Tensor {
	c, err := t.LocalClone()
	if err != nil {
		panic(err)
	}
	return c
}

package engine

import (
	"testing"

	. "github.com/gomlx/gomlx/pkg/core/graph"
	"github.com/gomlx/gomlx/pkg/core/tensors"
	gctx "github.com/gomlx/gomlx/pkg/ml/context"

	"github.com/goselfsup/goselfsup/engine/backend"
)

// A validation executable is built once, serves every shape it has compiled, and is built
// anew when a shape past maxValShapes arrives; the new one still computes the same thing.
func TestShapedExecRebuildsAfterMaxShapes(t *testing.T) {
	b, err := backend.New("go")
	if err != nil {
		t.Fatal(err)
	}
	ctx := gctx.New()
	builds := 0
	e := newShapedExec(func() *gctx.Exec {
		builds++
		return gctx.MustNewExec(b, ctx, func(ctx *gctx.Context, x *Node) *Node { return MulScalar(x, 2) })
	})
	defer e.close()
	run := func(n int) {
		t.Helper()
		x := tensors.FromFlatDataAndDimensions(make([]float32, n), n)
		out := e.forShape([3]int{1, 1, n}).MustExec(x)
		if got := len(out[0].Value().([]float32)); got != n {
			t.Fatalf("shape %d: %d values", n, got)
		}
	}
	for n := 1; n <= maxValShapes; n++ {
		run(n)
		run(n)
	}
	if builds != 1 {
		t.Fatalf("%d builds for %d shapes, want 1", builds, maxValShapes)
	}
	run(maxValShapes + 1)
	if builds != 2 {
		t.Fatalf("%d builds after shape %d, want 2", builds, maxValShapes+1)
	}
	run(1)
	if builds != 2 {
		t.Fatalf("%d builds, want 2: the new executable compiles shape 1 itself", builds)
	}
}

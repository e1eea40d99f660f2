package nn

import (
	"github.com/gomlx/gomlx/backends"
	"github.com/gomlx/gomlx/pkg/core/dtypes"
	. "github.com/gomlx/gomlx/pkg/core/graph"
	"github.com/gomlx/gomlx/pkg/core/shapes"
	"github.com/gomlx/gomlx/pkg/ml/context"
)

// A training step on several devices is one SPMD program: every device runs the same graph
// on its own shard of the batch, and the values that must agree across devices (gradients,
// SyncBN's statistics, the memory bank's update) meet through collectives. The functions
// below are those collectives; on a graph of one device each is the identity, so that
// models call them unconditionally.

// deviceKey is the graph parameter (Context.SetGraphParam) holding the node of the
// device's index in a graph that runs on several devices.
const deviceKey = "goselfsup/device"

// SetDevice records that, in g, device is the node of this device's index (an int32
// scalar, 0 to g.NumDevices()-1, which each device receives as an input). The models read
// it with Device.
func SetDevice(ctx *context.Context, g *Graph, device *Node) {
	ctx.SetGraphParam(g, deviceKey, device)
}

// Device returns the node of this device's index in g: the one SetDevice recorded, or the
// constant 0 on a graph of one device.
func Device(ctx *context.Context, g *Graph) *Node {
	if v, ok := ctx.GetGraphParam(g, deviceKey); ok {
		if n, ok := v.(*Node); ok {
			return n
		}
	}
	if g.NumDevices() > 1 {
		panic("nn.Device: a graph on several devices without the device's index (see nn.SetDevice)")
	}
	return ScalarZero(g, dtypes.Int32)
}

// AllSum sums x over the devices. Its gradient is the sum of the devices' cotangents,
// so that a value every device reads (SyncBN's statistics) passes the gradient of every
// device's loss back to each device's inputs.
func AllSum(x *Node) *Node {
	g := x.Graph()
	if g.NumDevices() <= 1 {
		return x
	}
	routed := IdentityWithCustomGradient(x, func(_, v *Node) *Node {
		return g.Distributed().AllReduceOne(v, backends.ReduceOpSum)
	})
	// The value is the all-reduce of x (routed - routed is exactly 0); the gradient reaches
	// x through routed, whose custom gradient sums the cotangents of all devices.
	fixed := StopGradient(routed)
	return Add(g.Distributed().AllReduceOne(fixed, backends.ReduceOpSum), Sub(routed, fixed))
}

// SumAcross sums x over the devices without a gradient: for values that leave the graph
// (the logged loss) or that the gradient does not flow through.
func SumAcross(x *Node) *Node {
	g := x.Graph()
	if g.NumDevices() <= 1 {
		return x
	}
	return g.Distributed().AllReduceOne(StopGradient(x), backends.ReduceOpSum)
}

// MeanAcross averages x over the devices without a gradient.
func MeanAcross(x *Node) *Node {
	n := x.Graph().NumDevices()
	if n <= 1 {
		return x
	}
	return DivScalar(SumAcross(x), float64(n))
}

// GatherRows collects the rows of x ([b, ...] on each of n devices) from all devices into
// [b*n, ...], row i*n + d holding device d's row i: the order of the global batch that a
// distributed sampler deals out (device d takes samples d, d+n, d+2n, ... of it), so that
// the result is the batch one device would have seen. Without a gradient; exact, since
// each value is summed with zeros only.
func GatherRows(ctx *context.Context, x *Node) *Node {
	g := x.Graph()
	n := g.NumDevices()
	if n <= 1 {
		return x
	}
	return SumAcross(spread(ctx, x, n))
}

// spread places x ([b, ...]) in slot Device of a zero [b, n, ...] and flattens it to
// [b*n, ...].
func spread(ctx *context.Context, x *Node, n int) *Node {
	g := x.Graph()
	dims := x.Shape().Dimensions
	full := append([]int{dims[0], n}, dims[1:]...)
	slots := BroadcastToDims(ExpandAxes(x, 1), full...) // [b, n, ...]
	onehot := OneHot(Device(ctx, g), n, x.DType())      // [n]
	mask := BroadcastToDims(Reshape(onehot, append([]int{1, n}, ones(len(dims)-1)...)...), full...)
	return Reshape(Mul(slots, mask), append([]int{dims[0] * n}, dims[1:]...)...)
}

// MyRows takes this device's rows of a global-batch tensor x ([b*n, ...] in the order that
// GatherRows gives): rows d, d+n, d+2n, ... -> [b, ...].
func MyRows(ctx *context.Context, x *Node) *Node {
	g := x.Graph()
	n := g.NumDevices()
	if n <= 1 {
		return x
	}
	b := x.Shape().Dimensions[0] / n
	rows := Add(MulScalar(Iota(g, shapes.Make(dtypes.Int32, b), 0), n), Device(ctx, g))
	return Gather(x, ExpandAxes(rows, -1))
}

func ones(n int) []int {
	out := make([]int, n)
	for i := range out {
		out[i] = 1
	}
	return out
}

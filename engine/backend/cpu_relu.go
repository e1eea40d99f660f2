package backend

import (
	"reflect"

	"github.com/gomlx/gomlx/backends"
	"github.com/gomlx/gomlx/pkg/core/dtypes"
	"github.com/gomlx/gomlx/pkg/core/shapes"

	"github.com/goselfsup/goselfsup/engine/backend/kernels"
)

// The ReLU. goselfsup's models write it as x·(x > 0) (models/nn.ReLU), which GoMLX records as
// Mul(x, ConvertDType(GreaterThan(x, zeros))); autodiff multiplies the output's gradient by
// the same mask. The pure-Go backend runs each of these ops as a pass over memory, and its
// conversion from booleans is slow. The CPU builder matches
//
//	Mul(x, ConvertDType(GreaterThan(a, zeros)))   (either operand order)
//
// and runs it as one host step (kernels.ReLUMask), the forward ReLU when x is a, its gradient
// otherwise; the mask is then dead code. Two fusions with batch norm follow:
//
//   - BatchNormGradient of a masked gradient runs as kernels.BatchNormGradReLU, which reads
//     the gradient and a (for its sign) instead of their product (see BatchNormGradient);
//   - a forward ReLU of batch norm's output runs inside the batch norm step
//     (kernels.BatchNormTrainReLU) when nothing else reads batch norm's output but for its
//     sign (see fuseReLUs).

// kindReLU is how the profile counts ReLU host steps.
const kindReLU = "ReLU"

// reluMask marks a value computed as x·(a > 0) by a ReLU host step.
type reluMask struct {
	a, x *value
}

// Mul runs the ReLU and its gradient (see above) as native kernels, and other large products
// as element-wise steps (cpu_elementwise.go); every other product goes to the pure-Go backend.
func (b *cpuBuilder) Mul(lhs, rhs op) (op, error) {
	if b.kernelsOff() {
		return b.forwardMul(lhs, rhs)
	}
	if out, ok, err := b.reluMul(lhs, rhs); ok || err != nil {
		return out, err
	}
	if out, ok, err := b.elementWise(kernels.OpMul, lhs, rhs, backends.Builder.Mul); ok || err != nil {
		return out, err
	}
	return b.forwardMul(lhs, rhs)
}

func (b *cpuBuilder) reluMul(lhs, rhs op) (op, bool, error) {
	l, err := b.val(lhs)
	if err != nil {
		return nil, false, nil
	}
	r, err := b.val(rhs)
	if err != nil {
		return nil, false, nil
	}
	x, a := l, positiveMask(r)
	if a == nil {
		x, a = r, positiveMask(l)
	}
	if a == nil || !isFloat(x.shape.DType) || !x.shape.Equal(a.shape) {
		return nil, false, nil
	}
	var run func(in, out []any)
	if x.shape.DType == dtypes.Float32 {
		run = reluRun[float32]
	} else {
		run = reluRun[float64]
	}
	outs, err := b.addStep(kindReLU, []op{a, x}, []shapes.Shape{x.shape}, run)
	if err != nil {
		return nil, true, err
	}
	if a != x {
		b.steps[len(b.steps)-1].signOf = []*value{a}
	}
	outs[0].(*value).relu = &reluMask{a: a, x: x}
	return outs[0], true, nil
}

func reluRun[T kernels.Float](in, out []any) {
	kernels.ReLUMask(in[0].([]T), in[1].([]T), out[0].([]T))
}

// positiveMask returns a when v is ConvertDType(GreaterThan(a, zeros)) with a of v's shape,
// nil otherwise.
func positiveMask(v *value) *value {
	if v.node == nil || v.node.op != "ConvertDType" {
		return nil
	}
	c := v.node.inputs[0][0]
	if c.node == nil || c.node.op != "GreaterThan" || c.shape.DType != dtypes.Bool {
		return nil
	}
	a, z := c.node.inputs[0][0], c.node.inputs[1][0]
	if !a.shape.Equal(v.shape) || !isZeros(z) {
		return nil
	}
	return a
}

// isZeros reports whether v is a constant zero, possibly broadcast or reshaped.
func isZeros(v *value) bool {
	for v.node != nil {
		switch v.node.op {
		case "Constant":
			if v.flat == nil {
				return false
			}
			f := reflect.ValueOf(v.flat)
			if f.Kind() != reflect.Slice {
				return f.IsValid() && f.IsZero()
			}
			for i := range f.Len() {
				if !f.Index(i).IsZero() {
					return false
				}
			}
			return true
		case "BroadcastInDim", "Broadcast", "Reshape", "Identity":
			v = v.node.inputs[0][0]
		default:
			return false
		}
	}
	return false
}

// fuseReLUs moves each live forward ReLU of a batch norm step's output into that step: the
// step then computes max(0, y) in place of y (kernels.BatchNormTrainReLU), and whatever read
// the ReLU's output reads the step's. It does so only when every other live reader of y reads
// it for its sign alone (the ReLU masks: GreaterThan(y, zeros), gradient masks and fused
// batch norm gradients), which a ReLU leaves unchanged, and y is not an output of the graph.
func (b *cpuBuilder) fuseReLUs() {
	for _, r := range b.steps {
		if !r.live || r.kind != kindReLU {
			continue
		}
		out := r.outputs[0]
		m := out.relu
		if m == nil || m.a != m.x || m.a.step < 0 {
			continue
		}
		y := m.a
		bn := b.steps[y.step]
		if bn.withReLU == nil || bn.outputs[0] != y || !b.onlySignRead(y, r) {
			continue
		}
		bn.run, bn.withReLU = bn.withReLU, nil
		b.replace(out, y)
		r.live, out.live = false, false
	}
}

// onlySignRead reports whether the live readers of y other than the host step skip read it
// only for its sign, and y is not an output of the graph.
func (b *cpuBuilder) onlySignRead(y *value, skip *hostStep) bool {
	for _, v := range b.outputs {
		if v == y {
			return false
		}
	}
	for _, n := range b.nodes {
		if !n.live {
			continue
		}
		for g, vs := range n.inputs {
			for _, v := range vs {
				if v == y && (n.op != "GreaterThan" || g != 0 || !isZeros(n.inputs[1][0])) {
					return false
				}
			}
		}
	}
	for _, st := range b.steps {
		if !st.live || st == skip {
			continue
		}
		for _, v := range st.inputs {
			if v == y && !containsValue(st.signOf, y) {
				return false
			}
		}
	}
	return true
}

func containsValue(vs []*value, v *value) bool {
	for _, w := range vs {
		if w == v {
			return true
		}
	}
	return false
}

// replace makes every reader of old (nodes, host steps, the graph's outputs) read v instead.
// v must be available no later than old.
func (b *cpuBuilder) replace(old, v *value) {
	for _, n := range b.nodes {
		for _, vs := range n.inputs {
			for i, w := range vs {
				if w == old {
					vs[i] = v
				}
			}
		}
	}
	for _, st := range b.steps {
		for i, w := range st.inputs {
			if w == old {
				st.inputs[i] = v
			}
		}
		for i, w := range st.signOf {
			if w == old {
				st.signOf[i] = v
			}
		}
	}
	for i, w := range b.outputs {
		if w == old {
			b.outputs[i] = v
		}
	}
}

var _ backends.Builder = (*cpuBuilder)(nil)

package backend

import (
	"errors"
	"fmt"
	"slices"
	"sync"

	"github.com/gomlx/gomlx/backends"
	"github.com/gomlx/gomlx/pkg/core/dtypes"
	"github.com/gomlx/gomlx/pkg/core/dtypes/bfloat16"
	"github.com/gomlx/gomlx/pkg/core/shapes"
)

// SPMD programs on virtual devices. An SPMD program over n devices (DistributedSPMD) runs
// once per device, each on a goroutine of its own, with that device's inputs; the devices
// meet only at AllReduce, a host step of kind "all-reduce" that cuts the graph like a native
// kernel. At an AllReduce every device publishes its operands and its fresh output buffers,
// waits for the others (a barrier), reduces its share of the elements (device r of a group
// of m the r-th m-th of each operand) and writes the result into the outputs of every device
// of its group, then waits again so that no device frees its operands while another reads
// them. Each element is reduced in the group's order (the group's first device, then the
// second, ...), so every device gets the same bits, run after run.

const kindAllReduce = "all-reduce"

// allReduce is a host step that reduces its inputs across the devices of each replica group.
type allReduce struct {
	reduction backends.ReduceOpType
	// groups lists the program's devices (0 to n-1) that reduce together; a device in no
	// group keeps its own values.
	groups [][]int
}

// group returns the replica group of the program's device i and i's rank in it.
func (a *allReduce) group(i int) ([]int, int) {
	for _, g := range a.groups {
		if r := slices.Index(g, i); r >= 0 {
			return g, r
		}
	}
	return []int{i}, 0
}

// AllReduce reduces each operand across the devices of each replica group (all the
// program's devices when replicaGroups is empty) as a host step; see above.
func (b *cpuBuilder) AllReduce(operands []op, reduction backends.ReduceOpType, replicaGroups [][]int) ([]op, error) {
	switch reduction {
	case backends.ReduceOpSum, backends.ReduceOpProduct, backends.ReduceOpMax, backends.ReduceOpMin:
	default:
		return nil, fmt.Errorf("AllReduce: goselfsup's CPU backend reduces with Sum, Product, Max or Min, not %s", reduction)
	}
	if len(operands) == 0 {
		return nil, errors.New("AllReduce: no operands")
	}
	n := b.numDevices
	groups := make([][]int, 0, len(replicaGroups))
	seen := make([]bool, n)
	for _, g := range replicaGroups {
		if len(g) == 0 {
			continue
		}
		for _, d := range g {
			if d < 0 || d >= n {
				return nil, fmt.Errorf("AllReduce: replica groups %v: device %d is not one of the program's %d devices", replicaGroups, d, n)
			}
			if seen[d] {
				return nil, fmt.Errorf("AllReduce: replica groups %v: device %d is in two groups", replicaGroups, d)
			}
			seen[d] = true
		}
		groups = append(groups, slices.Clone(g))
	}
	if len(groups) == 0 {
		groups = [][]int{make([]int, n)}
		for i := range n {
			groups[0][i] = i
		}
	}
	outShapes := make([]shapes.Shape, len(operands))
	for i, o := range operands {
		s := b.shape(o)
		switch s.DType {
		case dtypes.Float32, dtypes.Float64, dtypes.BFloat16, dtypes.Int32, dtypes.Int64:
		default:
			return nil, fmt.Errorf("AllReduce: operand #%d is %s: goselfsup's CPU backend reduces float32, float64, bfloat16, int32 and int64", i, s)
		}
		outShapes[i] = s
	}
	outs, err := b.addStep(kindAllReduce, operands, outShapes, nil)
	if err != nil {
		return nil, err
	}
	b.steps[len(b.steps)-1].collective = &allReduce{reduction: reduction, groups: groups}
	return outs, nil
}

// spmdRun is what the devices of one execution of an SPMD program share.
type spmdRun struct {
	barrier *barrier
	// slots[i] holds device i's operands and outputs (flat slices) at the current AllReduce.
	slots []collectiveSlot
}

type collectiveSlot struct{ in, out []any }

// runAllReduce runs an AllReduce step on the program's device r.replica: see the top of the
// file. in are the flat data of its operands, out of its fresh outputs.
func (r *run) runAllReduce(st *hostStep, in, out []any) error {
	a := st.collective
	if r.spmd == nil { // one device: each value reduces with itself
		for j := range in {
			copyFlat(out[j], in[j])
		}
		return nil
	}
	sp := r.spmd
	sp.slots[r.replica] = collectiveSlot{in: in, out: out}
	if err := sp.barrier.wait(); err != nil {
		return err
	}
	group, rank := a.group(r.replica)
	ins, outs := make([]any, len(group)), make([]any, len(group))
	for j := range in {
		for k, d := range group {
			ins[k], outs[k] = sp.slots[d].in[j], sp.slots[d].out[j]
		}
		size := flatLen(in[j])
		lo, hi := rank*size/len(group), (rank+1)*size/len(group)
		if err := reduceAcross(a.reduction, ins, outs, lo, hi); err != nil {
			return err
		}
	}
	return sp.barrier.wait()
}

// reduceAcross reduces elements lo to hi of the flat slices ins (one per device, in the
// group's order) and writes the result into each of outs.
func reduceAcross(reduction backends.ReduceOpType, ins, outs []any, lo, hi int) error {
	if lo >= hi {
		return nil
	}
	switch ins[0].(type) {
	case []float32:
		reduceNumbers(reduction, typed[float32](ins), typed[float32](outs), lo, hi)
	case []float64:
		reduceNumbers(reduction, typed[float64](ins), typed[float64](outs), lo, hi)
	case []int32:
		reduceNumbers(reduction, typed[int32](ins), typed[int32](outs), lo, hi)
	case []int64:
		reduceNumbers(reduction, typed[int64](ins), typed[int64](outs), lo, hi)
	case []bfloat16.BFloat16:
		reduceBFloat16(reduction, typed[bfloat16.BFloat16](ins), typed[bfloat16.BFloat16](outs), lo, hi)
	default:
		return fmt.Errorf("AllReduce: values of type %T", ins[0])
	}
	return nil
}

func typed[T any](flats []any) [][]T {
	out := make([][]T, len(flats))
	for i, f := range flats {
		out[i] = f.([]T)
	}
	return out
}

// reduceNumbers reduces into outs[0] (device by device, in order) and copies it to the others.
func reduceNumbers[T float32 | float64 | int32 | int64](reduction backends.ReduceOpType, ins, outs [][]T, lo, hi int) {
	acc := outs[0][lo:hi]
	copy(acc, ins[0][lo:hi])
	for _, x := range ins[1:] {
		x = x[lo:hi]
		switch reduction {
		case backends.ReduceOpSum:
			for i := range acc {
				acc[i] += x[i]
			}
		case backends.ReduceOpProduct:
			for i := range acc {
				acc[i] *= x[i]
			}
		case backends.ReduceOpMax:
			for i := range acc {
				acc[i] = max(acc[i], x[i])
			}
		case backends.ReduceOpMin:
			for i := range acc {
				acc[i] = min(acc[i], x[i])
			}
		}
	}
	for _, o := range outs[1:] {
		copy(o[lo:hi], acc)
	}
}

// reduceBFloat16 reduces bfloat16 values in float32 (rounded to bfloat16 once, at the end).
func reduceBFloat16(reduction backends.ReduceOpType, ins, outs [][]bfloat16.BFloat16, lo, hi int) {
	acc := make([]float32, hi-lo)
	for i := range acc {
		acc[i] = ins[0][lo+i].Float32()
	}
	for _, x := range ins[1:] {
		x = x[lo:hi]
		for i := range acc {
			v := x[i].Float32()
			switch reduction {
			case backends.ReduceOpSum:
				acc[i] += v
			case backends.ReduceOpProduct:
				acc[i] *= v
			case backends.ReduceOpMax:
				acc[i] = max(acc[i], v)
			case backends.ReduceOpMin:
				acc[i] = min(acc[i], v)
			}
		}
	}
	o0 := outs[0][lo:hi]
	for i, v := range acc {
		o0[i] = bfloat16.FromFloat32(v)
	}
	for _, o := range outs[1:] {
		copy(o[lo:hi], o0)
	}
}

// barrier makes the devices of an SPMD execution wait for each other; abort (a device's
// error) releases them all with that error.
type barrier struct {
	mu    sync.Mutex
	cond  sync.Cond
	n     int
	count int
	gen   int
	err   error
}

func newBarrier(n int) *barrier {
	b := &barrier{n: n}
	b.cond.L = &b.mu
	return b
}

func (b *barrier) wait() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.err != nil {
		return b.err
	}
	gen := b.gen
	b.count++
	if b.count == b.n {
		b.count = 0
		b.gen++
		b.cond.Broadcast()
		return nil
	}
	for gen == b.gen && b.err == nil {
		b.cond.Wait()
	}
	if gen == b.gen {
		return b.err
	}
	return nil
}

func (b *barrier) abort(err error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.err == nil {
		b.err = err
	}
	b.cond.Broadcast()
}

// errAborted is the error of a device that stopped because another failed.
var errAborted = errors.New("another device of the SPMD program failed")

// executeSPMD runs an SPMD program: the inputs are device-major (the program's parameters
// for device 0, then for device 1, ...), and so are the outputs.
func (e *cpuExec) executeSPMD(inputs []backends.Buffer, donate []bool) ([]backends.Buffer, error) {
	b := e.b
	n, np, no := b.numDevices, len(b.params), len(b.outputs)
	if len(inputs) != n*np {
		return nil, fmt.Errorf("Execute %q: %d inputs, want %d (%d parameters for each of %d devices, device-major)",
			b.name, len(inputs), n*np, np, n)
	}
	sp := &spmdRun{barrier: newBarrier(n), slots: make([]collectiveSlot, n)}
	outs := make([]backends.Buffer, n*no)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		var don []bool
		if len(donate) >= (i+1)*np {
			don = donate[i*np : (i+1)*np]
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			o, err := e.executeOn(inputs[i*np:(i+1)*np], don, b.device(i), i, sp)
			if err != nil {
				errs[i] = err
				sp.barrier.abort(errAborted)
				return
			}
			copy(outs[i*no:], o)
		}()
	}
	wg.Wait()
	var first error
	for i, err := range errs {
		if err != nil && (first == nil || errors.Is(first, errAborted)) {
			first = fmt.Errorf("device %d: %w", b.device(i), err)
		}
	}
	if first != nil {
		for _, buf := range outs {
			if buf != nil {
				_ = e.backend.BufferFinalize(buf)
			}
		}
		return nil, first
	}
	return outs, nil
}

// flatLen returns the length of a flat slice.
func flatLen(flat any) int {
	switch f := flat.(type) {
	case []float32:
		return len(f)
	case []float64:
		return len(f)
	case []int32:
		return len(f)
	case []int64:
		return len(f)
	case []bfloat16.BFloat16:
		return len(f)
	}
	panic(fmt.Sprintf("flatLen: %T", flat))
}

// copyFlat copies a flat slice into another of the same type and length.
func copyFlat(dst, src any) {
	switch d := dst.(type) {
	case []float32:
		copy(d, src.([]float32))
	case []float64:
		copy(d, src.([]float64))
	case []int32:
		copy(d, src.([]int32))
	case []int64:
		copy(d, src.([]int64))
	case []bfloat16.BFloat16:
		copy(d, src.([]bfloat16.BFloat16))
	default:
		panic(fmt.Sprintf("copyFlat: %T", dst))
	}
}

package backend

import (
	"fmt"
	"sort"
	"sync"
	"time"

	"github.com/gomlx/gomlx/backends"
	"github.com/gomlx/gomlx/pkg/core/shapes"
)

// cpuExec runs a compiled graph of the CPU backend: its pieces in order, each followed by
// its host step.
type cpuExec struct {
	backend *cpuBackend
	b       *cpuBuilder
	// lastUse[id] is the position of the last piece or step that reads value id; -1 when none.
	lastUse []int
	// isOutput[id] says the value is one of the graph's outputs (never freed).
	isOutput []bool
}

func newCPUExec(b *cpuBuilder) *cpuExec {
	e := &cpuExec{backend: b.backend, b: b, lastUse: make([]int, len(b.values)), isOutput: make([]bool, len(b.values))}
	for i := range e.lastUse {
		e.lastUse[i] = -1
	}
	for _, p := range b.pieces {
		if p.exec == nil {
			continue
		}
		for _, v := range p.params {
			e.lastUse[v.id] = max(e.lastUse[v.id], piecePos(p.index))
		}
	}
	for i, st := range b.steps {
		if !st.live {
			continue
		}
		for _, v := range st.inputs {
			e.lastUse[v.id] = max(e.lastUse[v.id], stepPos(i))
		}
	}
	for _, v := range b.outputs {
		e.isOutput[v.id] = true
	}
	return e
}

func (e *cpuExec) Finalize() {
	for _, p := range e.b.pieces {
		if p.exec != nil {
			p.exec.Finalize()
			p.exec = nil
		}
	}
}

func (e *cpuExec) Inputs() ([]string, []shapes.Shape) { return e.b.paramShapes() }
func (e *cpuExec) Outputs() []shapes.Shape            { return e.b.outputShapes() }

// run is the state of one execution on one device: the buffers of the values that cross
// pieces.
type run struct {
	e     *cpuExec
	bufs  []backends.Buffer
	owned []bool // the buffer is ours to free (computed here, or donated by the caller)
	// replica is the program's device this run is (0 to n-1 for an SPMD program over n
	// devices); spmd what the devices share, nil for a single-device program.
	replica int
	spmd    *spmdRun
}

// free releases the buffers that are still held (after an error, or values never read).
func (r *run) free(keep []bool) {
	for id, buf := range r.bufs {
		if buf != nil && r.owned[id] && (keep == nil || !keep[id]) {
			_ = r.e.backend.BufferFinalize(buf)
		}
		r.bufs[id] = nil
	}
}

// Execute runs the program. A single-device program runs on the device of its assignment,
// else on defaultDevice (any device: they all share the host's memory), and its outputs are
// buffers of that device. An SPMD program runs on each of its devices (see executeSPMD).
func (e *cpuExec) Execute(inputs []backends.Buffer, donate []bool, defaultDevice backends.DeviceNum) ([]backends.Buffer, error) {
	if e.b.numDevices > 1 {
		return e.executeSPMD(inputs, donate)
	}
	device := defaultDevice
	switch {
	case e.b.assignment != nil:
		device = e.b.assignment[0]
	case e.backend.devices == 1:
		device = 0 // as before virtual devices: the pure-Go backend ignores it too
	default:
		if err := e.backend.checkDevice(device); err != nil {
			return nil, fmt.Errorf("Execute %q: %w", e.b.name, err)
		}
	}
	return e.executeOn(inputs, donate, device, 0, nil)
}

// executeOn runs the program for the program's device replica, on the backend's device,
// with that device's inputs; sp is what the devices of an SPMD program share (nil for a
// single-device program).
func (e *cpuExec) executeOn(inputs []backends.Buffer, donate []bool, device backends.DeviceNum, replica int, sp *spmdRun) ([]backends.Buffer, error) {
	b := e.b
	if len(inputs) != len(b.params) {
		return nil, fmt.Errorf("Execute %q: %d inputs, want %d", b.name, len(inputs), len(b.params))
	}
	r := &run{e: e, bufs: make([]backends.Buffer, len(b.values)), owned: make([]bool, len(b.values)), replica: replica, spmd: sp}
	for i, v := range b.params {
		if inputs[i] == nil {
			return nil, fmt.Errorf("Execute %q: input #%d (%q) is nil", b.name, i, v.name)
		}
		r.bufs[v.id], _ = plain(inputs[i])
		r.owned[v.id] = i < len(donate) && donate[i]
	}
	prof := e.backend.profile
	for i, p := range b.pieces {
		if p.exec != nil {
			t0 := time.Now()
			if err := r.runPiece(p); err != nil {
				r.free(nil)
				return nil, err
			}
			prof.add("pure-Go ops", time.Since(t0))
		}
		if i < len(b.steps) && b.steps[i].live {
			t0 := time.Now()
			if err := r.runStep(i, b.steps[i]); err != nil {
				r.free(nil)
				return nil, err
			}
			prof.add(b.steps[i].kind, time.Since(t0))
		}
	}
	outs := make([]backends.Buffer, len(b.outputs))
	returned := make([]bool, len(b.values))
	for i, v := range b.outputs {
		buf := r.bufs[v.id]
		if buf == nil {
			r.free(nil)
			return nil, fmt.Errorf("Execute %q: output #%d (%s) was not computed", b.name, i, v)
		}
		if !r.owned[v.id] || returned[v.id] {
			var err error
			if buf, err = e.clone(buf); err != nil {
				r.free(nil)
				return nil, err
			}
		}
		outs[i] = onDevice(buf, device)
		returned[v.id] = true
	}
	r.free(returned)
	return outs, nil
}

// runPiece executes a piece, donating the buffers it reads for the last time.
func (r *run) runPiece(p *piece) error {
	pos := piecePos(p.index)
	ins := make([]backends.Buffer, len(p.params))
	don := make([]bool, len(p.params))
	for i, v := range p.params {
		if ins[i] = r.bufs[v.id]; ins[i] == nil {
			return fmt.Errorf("piece %d of %q: its input %s was not computed", p.index, r.e.b.name, v)
		}
		don[i] = r.owned[v.id] && r.e.lastUse[v.id] == pos && !r.e.isOutput[v.id]
	}
	outs, err := p.exec.Execute(ins, don, 0)
	if err != nil {
		return fmt.Errorf("piece %d of %q: %w", p.index, r.e.b.name, err)
	}
	for i, v := range p.params {
		if don[i] {
			r.bufs[v.id], r.owned[v.id] = nil, false
		}
	}
	for i, v := range p.outputs {
		r.bufs[v.id], r.owned[v.id] = outs[i], true
	}
	return nil
}

// runStep runs a host step on the flat data of its inputs, into new buffers, and frees the
// inputs it reads for the last time.
func (r *run) runStep(i int, st *hostStep) error {
	be := r.e.backend
	in := make([]any, len(st.inputs))
	for j, v := range st.inputs {
		buf := r.bufs[v.id]
		if buf == nil {
			return fmt.Errorf("host step %d (%s) of %q: its input %s was not computed", i, st.kind, r.e.b.name, v)
		}
		flat, err := be.BufferData(buf)
		if err != nil {
			return fmt.Errorf("host step %d (%s): %w", i, st.kind, err)
		}
		in[j] = flat
	}
	out := make([]any, len(st.outputs))
	for j, v := range st.outputs {
		buf, flat, err := be.NewSharedBuffer(0, v.shape)
		if err != nil {
			return fmt.Errorf("host step %d (%s): %w", i, st.kind, err)
		}
		r.bufs[v.id], r.owned[v.id], out[j] = buf, true, flat
	}
	var err error
	if st.collective != nil {
		err = r.runAllReduce(st, in, out)
	} else {
		err = runSafely(st, in, out)
	}
	if err != nil {
		return fmt.Errorf("host step %d (%s) of %q: %w", i, st.kind, r.e.b.name, err)
	}
	pos := stepPos(i)
	for _, v := range st.inputs {
		if r.owned[v.id] && r.e.lastUse[v.id] == pos && !r.e.isOutput[v.id] && r.bufs[v.id] != nil {
			_ = be.BufferFinalize(r.bufs[v.id])
			r.bufs[v.id], r.owned[v.id] = nil, false
		}
	}
	return nil
}

// runSafely turns a kernel's panic (a bug) into an error.
func runSafely(st *hostStep, in, out []any) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("kernel panicked: %v", p)
		}
	}()
	st.run(in, out)
	return nil
}

// clone copies a buffer (an output that the caller must own).
func (e *cpuExec) clone(buf backends.Buffer) (backends.Buffer, error) {
	return copyBuffer(e.backend.Backend, buf)
}

// Profile adds up where the CPU backend's executions spend their time: in the pure-Go
// backend's pieces and in each kind of native kernel.
type Profile struct {
	mu    sync.Mutex
	spent map[string]time.Duration
	calls map[string]int
}

func (p *Profile) add(kind string, d time.Duration) {
	if p == nil {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.spent == nil {
		p.spent, p.calls = map[string]time.Duration{}, map[string]int{}
	}
	p.spent[kind] += d
	p.calls[kind]++
}

// ProfileEntry is the time spent on one kind of work.
type ProfileEntry struct {
	Kind  string
	Spent time.Duration
	Calls int
}

// Entries lists the kinds of work, most time first.
func (p *Profile) Entries() []ProfileEntry {
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []ProfileEntry
	for k, d := range p.spent {
		out = append(out, ProfileEntry{k, d, p.calls[k]})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Spent > out[j].Spent })
	return out
}

// Reset forgets what was counted.
func (p *Profile) Reset() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.spent, p.calls = nil, nil
}

// ProfileOf returns the profile of the CPU backend b (it counts from b's creation; Reset
// starts again), or nil when b is not the CPU engine with native kernels.
func ProfileOf(b backends.Backend) *Profile {
	if c, ok := b.(*cpuBackend); ok && c.native {
		return c.profile
	}
	return nil
}

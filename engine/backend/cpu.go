package backend

//go:generate go run ./internal/gencpuops

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/gomlx/gomlx/backends"
	"github.com/gomlx/gomlx/pkg/core/shapes"

	"github.com/goselfsup/goselfsup/engine/backend/kernels"
)

// cpuBackend is goselfsup's CPU engine, the backend that the name "go" selects. GoMLX's
// pure-Go backend runs every op it does well; convolutions, large matrix products, batch
// normalisation, the ReLU (fused with batch norm where it follows it; see cpu_relu.go) and
// the NPID head, and large element-wise arithmetic with per-channel or scalar operands (see
// cpu_elementwise.go) run as native kernels (package kernels) between its pieces.
//
// A graph is built as a sequence of pieces and host steps: each op is added to the pure-Go
// builder of the earliest piece where its inputs are available, and each native op becomes
// a host step that runs on the buffers of earlier pieces and steps. A value that crosses
// from one piece or step to another becomes an output of the piece that computes it and a
// parameter of the piece that reads it. Compile compiles each piece; Execute runs them in
// order, with the host steps between them, and frees each buffer after its last use.
//
// With native kernels off (the option kernels=off), it builds whole graphs with the pure-Go
// backend and the gap-filling lowerings (filled), as goselfsup did before the engine: the
// reference that the engine's tests compare with.
type cpuBackend struct {
	backends.Backend // GoMLX's pure-Go backend: buffers, and the compiler of the pieces
	native           bool
	devices          int // virtual devices (see cpu_devices.go); 1 unless devices=N
	profile          *Profile
}

// cpuConfig is goselfsup's own part of a pure-Go backend configuration.
type cpuConfig struct {
	native  bool // kernels=on (the default) or off
	devices int  // devices=N, the number of virtual devices (default 1)
}

// cpuOptions takes goselfsup's own options out of a pure-Go backend configuration
// ("kernels=on|off", "devices=N"), leaving GoMLX's.
func cpuOptions(config string) (cfg cpuConfig, rest string, err error) {
	cfg = cpuConfig{native: true, devices: 1}
	var keep []string
	for opt := range strings.SplitSeq(config, ",") {
		key, val, _ := strings.Cut(opt, "=")
		switch key {
		case "kernels":
			switch val {
			case "on", "native":
				cfg.native = true
			case "off":
				cfg.native = false
			default:
				return cfg, "", fmt.Errorf("kernels=%q: want kernels=on or kernels=off", val)
			}
		case "devices":
			n, err := strconv.Atoi(val)
			if err != nil || n < 1 || n > maxDevices {
				return cfg, "", fmt.Errorf("devices=%q: want devices=N with N a whole number from 1 to %d", val, maxDevices)
			}
			cfg.devices = n
		default:
			if opt != "" {
				keep = append(keep, opt)
			}
		}
	}
	return cfg, strings.Join(keep, ","), nil
}

// maxDevices bounds devices=N: each virtual device runs its copy of an SPMD program on a
// goroutine of its own, so more devices than this only add memory and scheduling.
const maxDevices = 1024

func (c *cpuBackend) Builder(name string) backends.Builder {
	if !c.native && c.devices == 1 {
		return &filledBuilder{Builder: c.Backend.Builder(name)}
	}
	// With several devices, kernels=off also builds pieces (every op in them, and the
	// AllReduce host steps between them; see kernelsOff).
	b := &cpuBuilder{backend: c, name: name, numDevices: 1}
	b.filled = &filledBuilder{Builder: b}
	return b
}

func (c *cpuBackend) Capabilities() backends.Capabilities {
	return (&filled{Backend: c.Backend}).Capabilities()
}

func (c *cpuBackend) Description() string {
	devices := ""
	if c.devices > 1 {
		devices = fmt.Sprintf(", %d virtual devices", c.devices)
	}
	if !c.native {
		return c.Backend.Description() + " (with goselfsup's filled ops; native kernels off" + devices + ")"
	}
	return fmt.Sprintf("goselfsup CPU engine: native kernels (%s) between pieces of %s%s", kernels.ISA(), c.Backend.Description(), devices)
}

// cpuBuilder builds a graph as pieces and host steps (see cpuBackend). It records each op
// (its inputs, and a function that builds it with a pure-Go builder) and builds it at once
// into a scratch builder for its shape; Compile builds the ops that the outputs need into
// the pieces, so that no piece holds dead ops or unused parameters.
type cpuBuilder struct {
	backend *cpuBackend
	name    string
	filled  *filledBuilder   // the lowerings of ops that have no native kernel, built with b's ops
	shapes  backends.Builder // scratch: every op, for its shape
	values  []*value
	params  []*value
	nodes   []*node
	pieces  []*piece
	steps   []*hostStep
	outputs []*value
	built   bool

	numDevices int                  // the devices an SPMD program runs on (DistributedSPMD); 1 otherwise
	assignment []backends.DeviceNum // the devices that run it (DeviceAssignment); nil: the default
}

// value is an op of the graph: computed by a piece, by a host step, or a parameter.
type value struct {
	b       *cpuBuilder
	id      int
	shape   shapes.Shape
	shapeOp backends.Op // the op in the scratch builder
	node    *node       // the recorded op that computes it, in piece `piece`; nil otherwise
	piece   int         // the piece that computes it, or -1
	inner   backends.Op // its op in that piece, once built
	step    int         // the host step that computes it, or -1
	param   int         // the graph parameter it is, or -1
	name    string      // a parameter's name

	rows     *gatheredRows // the value is rows of a table gathered by an index (the NPID head's negatives)
	relu     *reluMask     // the value is x·(a > 0), computed by a ReLU host step
	reversed *reversal     // the value is another reversed along some axes
	bcast    *broadcast    // the value is another broadcast (BroadcastInDim), for element-wise steps
	flat     any           // a constant's flat data

	imports  map[int]backends.Op // the parameter it comes in as, in other pieces
	exported bool                // an output of its piece
	live     bool                // the graph's outputs need it
}

// node is a recorded op of a piece.
type node struct {
	op     string // the op's name, for the native kernels' patterns
	piece  int
	inputs [][]*value
	build  func(inner backends.Builder, in [][]backends.Op) ([]backends.Op, error)
	outs   []*value
	live   bool
}

// level is the first piece in which the value is available.
func (v *value) level() int {
	switch {
	case v.piece >= 0:
		return v.piece
	case v.step >= 0:
		return v.step + 1
	}
	return 0
}

func (v *value) String() string {
	switch {
	case v.piece >= 0:
		return fmt.Sprintf("value #%d %s (piece %d)", v.id, v.shape, v.piece)
	case v.step >= 0:
		return fmt.Sprintf("value #%d %s (host step %d)", v.id, v.shape, v.step)
	}
	return fmt.Sprintf("parameter %q %s", v.name, v.shape)
}

// piece is a part of the graph that the pure-Go backend builds and runs.
type piece struct {
	index   int
	inner   backends.Builder
	nodes   []*node
	params  []*value // the values it reads from earlier pieces and steps, in parameter order
	outputs []*value // the values later pieces, steps or the graph's outputs read
	exec    backends.Executable
}

// hostStep is a native op between two pieces.
type hostStep struct {
	kind    string // what the profile counts it as
	inputs  []*value
	outputs []*value
	live    bool
	// run computes the outputs' flat data from the inputs': slices of the values' dtypes.
	run func(in, out []any)
	// signOf lists the inputs that the step reads only for where they are positive, so that a
	// ReLU applied to them changes nothing.
	signOf []*value
	// withReLU, when set, is run followed by a ReLU on the first output (batch norm for
	// training), for fuseReLUs.
	withReLU func(in, out []any)
	// collective, when set, makes the step an AllReduce across devices (run is nil).
	collective *allReduce
}

func (b *cpuBuilder) Name() string { return b.name }

func (b *cpuBuilder) newValue(v *value) *value {
	v.b, v.id = b, len(b.values)
	b.values = append(b.values, v)
	return v
}

// val converts an op of this builder to its value.
func (b *cpuBuilder) val(op backends.Op) (*value, error) {
	v, ok := op.(*value)
	if !ok || v == nil {
		return nil, fmt.Errorf("builder %q: op %v (%T) is not from goselfsup's CPU backend", b.name, op, op)
	}
	if v.b != b {
		return nil, fmt.Errorf("builder %q: %s comes from another builder (%q)", b.name, v, v.b.name)
	}
	return v, nil
}

// scratch returns the scratch builder, creating it.
func (b *cpuBuilder) scratch() backends.Builder {
	if b.shapes == nil {
		b.shapes = b.backend.Backend.Builder(b.name + "#shapes")
	}
	return b.shapes
}

// pieceAt returns the piece with the given index, creating the pieces up to it.
func (b *cpuBuilder) pieceAt(i int) *piece {
	for len(b.pieces) <= i {
		n := len(b.pieces)
		b.pieces = append(b.pieces, &piece{index: n})
	}
	return b.pieces[i]
}

// record adds an op of the pure-Go backend, reading the given groups of inputs, to the
// earliest piece where all of them are available (the newest piece for an op without
// inputs), and returns its outputs.
func (b *cpuBuilder) record(opName string, build func(inner backends.Builder, in [][]backends.Op) ([]backends.Op, error),
	groups ...[]backends.Op) ([]backends.Op, error) {
	if b.built {
		return nil, fmt.Errorf("%s: builder %q is already compiled", opName, b.name)
	}
	level, hasInputs := 0, false
	vals := make([][]*value, len(groups))
	shapeIn := make([][]backends.Op, len(groups))
	for g, ops := range groups {
		vals[g], shapeIn[g] = make([]*value, len(ops)), make([]backends.Op, len(ops))
		for i, op := range ops {
			v, err := b.val(op)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", opName, err)
			}
			vals[g][i], shapeIn[g][i] = v, v.shapeOp
			level, hasInputs = max(level, v.level()), true
		}
	}
	if !hasInputs {
		level = len(b.steps)
	}
	res, err := build(b.scratch(), shapeIn)
	if err != nil {
		return nil, err
	}
	n := &node{op: opName, piece: level, inputs: vals, build: build}
	p := b.pieceAt(level)
	p.nodes = append(p.nodes, n)
	b.nodes = append(b.nodes, n)
	out := make([]backends.Op, len(res))
	for i, r := range res {
		s, err := b.shapes.OpShape(r)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", opName, err)
		}
		v := b.newValue(&value{shape: s, shapeOp: r, node: n, piece: level, step: -1, param: -1})
		n.outs = append(n.outs, v)
		out[i] = v
	}
	return out, nil
}

// in returns v as an op of piece p (while Compile builds p): its own op, or the parameter it
// comes in as.
func (b *cpuBuilder) in(p *piece, v *value) (backends.Op, error) {
	if v.piece == p.index {
		return v.inner, nil
	}
	if op, ok := v.imports[p.index]; ok {
		return op, nil
	}
	op, err := p.inner.Parameter(fmt.Sprintf("v%d", v.id), v.shape, nil)
	if err != nil {
		return nil, err
	}
	if v.imports == nil {
		v.imports = map[int]backends.Op{}
	}
	v.imports[p.index] = op
	p.params = append(p.params, v)
	b.export(v)
	return op, nil
}

// export makes v an output of the piece that computes it (if a piece does).
func (b *cpuBuilder) export(v *value) {
	if v.piece >= 0 && !v.exported {
		v.exported = true
		p := b.pieces[v.piece]
		p.outputs = append(p.outputs, v)
	}
}

// addStep adds a host step that computes values of the given shapes from the inputs.
func (b *cpuBuilder) addStep(kind string, inputs []backends.Op, outShapes []shapes.Shape, run func(in, out []any)) ([]backends.Op, error) {
	if b.built {
		return nil, fmt.Errorf("%s: builder %q is already compiled", kind, b.name)
	}
	st := &hostStep{kind: kind, run: run}
	for _, op := range inputs {
		v, err := b.val(op)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", kind, err)
		}
		st.inputs = append(st.inputs, v)
	}
	h := len(b.steps)
	b.pieceAt(h) // the piece that runs before the step, even if empty
	out := make([]backends.Op, len(outShapes))
	for i, s := range outShapes {
		shapeOp, err := b.scratch().Parameter(fmt.Sprintf("step%d.%d", h, i), s, nil)
		if err != nil {
			return nil, err
		}
		v := b.newValue(&value{shape: s, shapeOp: shapeOp, piece: -1, step: h, param: -1})
		st.outputs = append(st.outputs, v)
		out[i] = v
	}
	b.steps = append(b.steps, st)
	return out, nil
}

func (b *cpuBuilder) OpShape(op backends.Op) (shapes.Shape, error) {
	v, err := b.val(op)
	if err != nil {
		return shapes.Invalid(), err
	}
	return v.shape, nil
}

func (b *cpuBuilder) Parameter(name string, shape shapes.Shape, sharding *backends.ShardingSpec) (backends.Op, error) {
	if err := b.replicated(sharding); err != nil {
		return nil, fmt.Errorf("parameter %q: %w", name, err)
	}
	shapeOp, err := b.scratch().Parameter(name, shape, nil)
	if err != nil {
		return nil, err
	}
	v := b.newValue(&value{shape: shape, shapeOp: shapeOp, piece: -1, step: -1, param: len(b.params), name: name})
	b.params = append(b.params, v)
	return v, nil
}

// replicated returns an error unless the sharding spec is nil or replicates the value on
// every device (no tensor axis split along a mesh axis): an SPMD program of this backend
// gives each device a whole value of the parameter's shape, and it has no automatic sharding.
func (b *cpuBuilder) replicated(spec *backends.ShardingSpec) error {
	if spec == nil {
		return nil
	}
	for axis, meshAxes := range spec.Axes {
		if len(meshAxes) > 0 {
			return fmt.Errorf("goselfsup's CPU backend does not shard values (axis %d along mesh axes %v of mesh %q): "+
				"an SPMD program gets each device's value of the whole shape as its own input", axis, meshAxes, spec.Mesh)
		}
	}
	return nil
}

func (b *cpuBuilder) Constant(flat any, dims ...int) (backends.Op, error) {
	outs, err := b.record("Constant", func(inner backends.Builder, _ [][]backends.Op) ([]backends.Op, error) {
		op, err := inner.Constant(flat, dims...)
		return []backends.Op{op}, err
	})
	if err != nil {
		return nil, err
	}
	outs[0].(*value).flat = flat
	return outs[0], nil
}

// DistributedSPMD makes the program an SPMD program over numDevices of the backend's virtual
// devices: Execute takes each device's inputs (device-major) and runs the program once per
// device, concurrently; AllReduce combines the devices' values.
func (b *cpuBuilder) DistributedSPMD(numDevices int) error {
	if numDevices < 1 || numDevices > b.backend.devices {
		if b.backend.devices == 1 {
			return fmt.Errorf("goselfsup's CPU backend has one device, not %d (the backend option devices=N gives N)", numDevices)
		}
		return fmt.Errorf("goselfsup's CPU backend has %d devices, not %d", b.backend.devices, numDevices)
	}
	if len(b.values) > 0 {
		return fmt.Errorf("DistributedSPMD(%d): builder %q already has ops", numDevices, b.name)
	}
	b.numDevices = numDevices
	return nil
}

func (b *cpuBuilder) DistributedAutoSharding(meshes ...backends.Mesh) error {
	return fmt.Errorf("goselfsup's CPU backend has no automatic sharding (only SPMD programs with explicit AllReduce)")
}

// DeviceAssignment sets the devices that run the program: one per SPMD device (the program's
// device i runs on devices[i]), all different, or one device for a single-device program.
func (b *cpuBuilder) DeviceAssignment(devices ...backends.DeviceNum) error {
	if len(devices) != b.numDevices {
		return fmt.Errorf("DeviceAssignment %v: the program runs on %d device(s), so it takes %d", devices, b.numDevices, b.numDevices)
	}
	seen := map[backends.DeviceNum]bool{}
	for _, d := range devices {
		if err := b.backend.checkDevice(d); err != nil {
			return fmt.Errorf("DeviceAssignment %v: %w", devices, err)
		}
		if seen[d] {
			return fmt.Errorf("DeviceAssignment %v: device %d is listed twice", devices, d)
		}
		seen[d] = true
	}
	b.assignment = append([]backends.DeviceNum(nil), devices...)
	return nil
}

// device returns the backend device that runs the program's device i.
func (b *cpuBuilder) device(i int) backends.DeviceNum {
	if b.assignment != nil {
		return b.assignment[i]
	}
	return backends.DeviceNum(i)
}

// Compile marks what the outputs need, builds those ops into their pieces, compiles each
// piece with the values that later pieces, steps and the graph's outputs read, and plans when
// each buffer is last used.
func (b *cpuBuilder) Compile(outputs []backends.Op, shardings []*backends.ShardingSpec) (backends.Executable, error) {
	for i, spec := range shardings {
		if err := b.replicated(spec); err != nil {
			return nil, fmt.Errorf("Compile: output #%d: %w", i, err)
		}
	}
	if b.built {
		return nil, fmt.Errorf("builder %q is already compiled", b.name)
	}
	for _, op := range outputs {
		v, err := b.val(op)
		if err != nil {
			return nil, fmt.Errorf("Compile: %w", err)
		}
		b.outputs = append(b.outputs, v)
		v.live = true
	}
	b.built = true
	b.markLive()
	b.fuseReLUs()
	b.placeLate()
	for _, p := range b.pieces {
		if err := b.buildPiece(p); err != nil {
			return nil, fmt.Errorf("building piece %d of %q: %w", p.index, b.name, err)
		}
	}
	for _, st := range b.steps {
		if st.live {
			for _, v := range st.inputs {
				b.export(v)
			}
		}
	}
	for _, v := range b.outputs {
		b.export(v)
	}
	for _, p := range b.pieces {
		if len(p.outputs) == 0 {
			continue
		}
		inner := make([]backends.Op, len(p.outputs))
		for i, v := range p.outputs {
			inner[i] = v.inner
		}
		exec, err := p.inner.Compile(inner, nil)
		if err != nil {
			return nil, fmt.Errorf("compiling piece %d of %q: %w", p.index, b.name, err)
		}
		p.exec = exec
	}
	b.shapes = nil
	return newCPUExec(b), nil
}

// markLive marks the values, nodes and host steps that the outputs need. Values are numbered
// in the order they were built, so one pass from the last to the first suffices.
func (b *cpuBuilder) markLive() {
	for id := len(b.values) - 1; id >= 0; id-- {
		v := b.values[id]
		if !v.live {
			continue
		}
		var inputs [][]*value
		switch {
		case v.node != nil:
			v.node.live = true
			inputs = v.node.inputs
		case v.step >= 0:
			st := b.steps[v.step]
			st.live = true
			inputs = [][]*value{st.inputs}
		}
		for _, g := range inputs {
			for _, in := range g {
				in.live = true
			}
		}
	}
}

// placeLate moves each live op to the last piece before its first reader (a piece or a host
// step; the last piece for the graph's outputs). Ops are recorded in the earliest piece their
// inputs allow, but an op that only feeds a late reader, such as a variable update, is better
// run late: a buffer it updates is then read for the last time by it, and the pure-Go backend
// updates it in place (the memory bank: two copies of 656 MB a step for ImageNet's) instead
// of copying it, and intermediate values live shorter.
func (b *cpuBuilder) placeLate() {
	last := len(b.steps)
	b.pieceAt(last)
	latest := make([]int, len(b.values)) // the last piece that may compute each value
	for i := range latest {
		latest[i] = last
	}
	for h, st := range b.steps {
		if st.live {
			for _, v := range st.inputs {
				latest[v.id] = min(latest[v.id], h)
			}
		}
	}
	// Readers come after what they read, so one pass from the last value back places every
	// reader before the values it reads.
	for id := len(b.values) - 1; id >= 0; id-- {
		v := b.values[id]
		n := v.node
		if n == nil || !n.live || n.outs[0] != v {
			continue // not a live op, or an op with several outputs seen at its first
		}
		p := last
		for _, o := range n.outs {
			p = min(p, latest[o.id])
		}
		n.piece = p
		for _, o := range n.outs {
			o.piece = p
		}
		for _, g := range n.inputs {
			for _, in := range g {
				latest[in.id] = min(latest[in.id], p)
			}
		}
	}
	for _, p := range b.pieces {
		p.nodes = p.nodes[:0]
	}
	for _, n := range b.nodes {
		if n.live {
			p := b.pieces[n.piece]
			p.nodes = append(p.nodes, n)
		}
	}
}

// buildPiece builds the live nodes of p into a pure-Go builder of its own.
func (b *cpuBuilder) buildPiece(p *piece) error {
	for _, n := range p.nodes {
		if !n.live {
			continue
		}
		if p.inner == nil {
			p.inner = b.backend.Backend.Builder(fmt.Sprintf("%s#%d", b.name, p.index))
		}
		in := make([][]backends.Op, len(n.inputs))
		for g, vs := range n.inputs {
			in[g] = make([]backends.Op, len(vs))
			for i, v := range vs {
				op, err := b.in(p, v)
				if err != nil {
					return err
				}
				in[g][i] = op
			}
		}
		res, err := n.build(p.inner, in)
		if err != nil {
			return err
		}
		for i, v := range n.outs {
			v.inner = res[i]
		}
	}
	return nil
}

var _ backends.Builder = (*cpuBuilder)(nil)

// positions: piece i runs at position 2i, host step i at 2i+1.
func piecePos(i int) int { return 2 * i }
func stepPos(i int) int  { return 2*i + 1 }

// paramShapes returns the names and shapes of the graph's parameters.
func (b *cpuBuilder) paramShapes() ([]string, []shapes.Shape) {
	names, ss := make([]string, len(b.params)), make([]shapes.Shape, len(b.params))
	for i, v := range b.params {
		names[i], ss[i] = v.name, v.shape
	}
	return names, ss
}

func (b *cpuBuilder) outputShapes() []shapes.Shape {
	ss := make([]shapes.Shape, len(b.outputs))
	for i, v := range b.outputs {
		ss[i] = v.shape
	}
	return ss
}

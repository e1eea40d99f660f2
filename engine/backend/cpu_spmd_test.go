package backend

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/gomlx/gomlx/backends"
	"github.com/gomlx/gomlx/pkg/core/distributed"
	"github.com/gomlx/gomlx/pkg/core/dtypes"
	"github.com/gomlx/gomlx/pkg/core/dtypes/bfloat16"
	. "github.com/gomlx/gomlx/pkg/core/graph"
	"github.com/gomlx/gomlx/pkg/core/shapes"
	"github.com/gomlx/gomlx/pkg/core/tensors"
)

func mesh(t testing.TB, sizes []int, names ...string) *distributed.DeviceMesh {
	m, err := distributed.NewDeviceMesh(sizes, names)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func newBackend(t testing.TB, config string) backends.Backend {
	b, err := New(config)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// asFloat64 reads a tensor of any of the reduced dtypes as float64.
func asFloat64(t *tensors.Tensor) []float64 {
	var out []float64
	switch t.DType() {
	case dtypes.Float32:
		for _, v := range tensors.MustCopyFlatData[float32](t) {
			out = append(out, float64(v))
		}
	case dtypes.Float64:
		out = tensors.MustCopyFlatData[float64](t)
	case dtypes.BFloat16:
		for _, v := range tensors.MustCopyFlatData[bfloat16.BFloat16](t) {
			out = append(out, float64(v.Float32()))
		}
	case dtypes.Int32:
		for _, v := range tensors.MustCopyFlatData[int32](t) {
			out = append(out, float64(v))
		}
	case dtypes.Int64:
		for _, v := range tensors.MustCopyFlatData[int64](t) {
			out = append(out, float64(v))
		}
	}
	return out
}

func tensorOf(dtype dtypes.DType, values []float64) *tensors.Tensor {
	switch dtype {
	case dtypes.Float32:
		return tensors.FromValue(mapSlice(values, func(v float64) float32 { return float32(v) }))
	case dtypes.Float64:
		return tensors.FromValue(slices.Clone(values))
	case dtypes.BFloat16:
		return tensors.FromFlatDataAndDimensions(mapSlice(values, bfloat16.FromFloat64), len(values))
	case dtypes.Int32:
		return tensors.FromValue(mapSlice(values, func(v float64) int32 { return int32(v) }))
	case dtypes.Int64:
		return tensors.FromValue(mapSlice(values, func(v float64) int64 { return int64(v) }))
	}
	panic(dtype)
}

func mapSlice[T, U any](in []T, f func(T) U) []U {
	out := make([]U, len(in))
	for i, v := range in {
		out[i] = f(v)
	}
	return out
}

// TestAllReduceSPMD runs an SPMD program on 3 devices, each with its own input, and checks
// the four reductions (two of them in one AllReduce of two operands) against values worked
// out by hand.
func TestAllReduceSPMD(t *testing.T) {
	inputs := map[string][3][]float64{
		"float": {{1, -2, 3.5, 0}, {4, 0.5, -1, 2}, {-3, 2, 2, 0.25}},
		"int":   {{1, -2, 3, 0}, {4, 5, -1, 2}, {-3, 2, 2, 7}},
	}
	want := map[string][4][]float64{ // sum, max, min, product
		"float": {{2, 0.5, 4.5, 2.25}, {4, 2, 3.5, 2}, {-3, -2, -1, 0}, {-12, -2, -7, 0}},
		"int":   {{2, 5, 4, 9}, {4, 5, 3, 7}, {-3, -2, -1, 0}, {-12, -20, -6, 0}},
	}
	fn := func(x *Node) []*Node {
		d := x.Graph().Distributed()
		sums := d.AllReduce([]*Node{x, Neg(x)}, backends.ReduceOpSum)
		return []*Node{sums[0], d.AllReduceOne(x, backends.ReduceOpMax), d.AllReduceOne(x, backends.ReduceOpMin),
			d.AllReduceOne(x, backends.ReduceOpProduct), sums[1]}
	}
	for _, config := range []string{"go:devices=3", "go:devices=4,kernels=off"} {
		b := newBackend(t, config)
		for _, dtype := range []dtypes.DType{dtypes.Float32, dtypes.Float64, dtypes.BFloat16, dtypes.Int32, dtypes.Int64} {
			t.Run(fmt.Sprintf("%s/%s", config, dtype), func(t *testing.T) {
				kind := "float"
				if dtype.IsInt() {
					kind = "int"
				}
				in := inputs[kind]
				e := MustNewExec(b, fn).SPMD(mesh(t, []int{3}, "data"))
				outs, err := e.Exec(tensorOf(dtype, in[0]), tensorOf(dtype, in[1]), tensorOf(dtype, in[2]))
				if err != nil {
					t.Fatal(err)
				}
				if len(outs) != 3*5 {
					t.Fatalf("%d outputs, want 15 (5 per device)", len(outs))
				}
				for d := range 3 {
					for k, name := range []string{"sum", "max", "min", "product"} {
						o := outs[5*d+k]
						if o.DType() != dtype {
							t.Fatalf("device %d %s: dtype %s", d, name, o.DType())
						}
						if got := asFloat64(o); !slices.Equal(got, want[kind][k]) {
							t.Errorf("device %d %s: got %v, want %v", d, name, got, want[kind][k])
						}
					}
					if got, w := asFloat64(outs[5*d+4]), mapSlice(want[kind][0], func(v float64) float64 { return -v }); !slices.Equal(got, w) {
						t.Errorf("device %d: sum of the second operand: got %v, want %v", d, got, w)
					}
				}
			})
		}
	}
}

// TestAllReduceReplicaGroups reduces along each axis of a 2x2 mesh on 4 devices: along "b"
// the groups are [[0, 1], [2, 3]], along "a" [[0, 2], [1, 3]].
func TestAllReduceReplicaGroups(t *testing.T) {
	b := newBackend(t, "go:devices=4")
	m := mesh(t, []int{2, 2}, "a", "b")
	if g, _ := m.ComputeReplicaGroups([]string{"b"}); !slices.EqualFunc(g, [][]int{{0, 1}, {2, 3}}, slices.Equal) {
		t.Fatalf("mesh groups along b: %v", g)
	}
	e := MustNewExec(b, func(x *Node) []*Node {
		d := x.Graph().Distributed()
		return []*Node{d.Along("b").AllReduceOne(x, backends.ReduceOpSum), d.Along("a").AllReduceOne(x, backends.ReduceOpSum),
			d.Along("a", "b").AllReduceOne(x, backends.ReduceOpSum)}
	}).SPMD(m)
	outs := e.MustExec([]float32{1, 10}, []float32{2, 20}, []float32{4, 40}, []float32{8, 80})
	want := [4][3][]float32{
		{{3, 30}, {5, 50}, {15, 150}},
		{{3, 30}, {10, 100}, {15, 150}},
		{{12, 120}, {5, 50}, {15, 150}},
		{{12, 120}, {10, 100}, {15, 150}},
	}
	for d := range 4 {
		for k := range 3 {
			if got := tensors.MustCopyFlatData[float32](outs[3*d+k]); !slices.Equal(got, want[d][k]) {
				t.Errorf("device %d, output %d: got %v, want %v", d, k, got, want[d][k])
			}
		}
	}
}

// TestAllReduceDeterministic sums many float32 values of mixed magnitudes on 4 devices: every
// device gets the same bits, run after run, and they are those of summing the devices' values
// in order (((x0 + x1) + x2) + x3).
func TestAllReduceDeterministic(t *testing.T) {
	const n, size = 4, 10007
	b := newBackend(t, fmt.Sprintf("go:devices=%d", n))
	rng := rand.New(rand.NewPCG(3, 4))
	xs := make([][]float32, n)
	args := make([]any, n)
	for d := range xs {
		xs[d] = make([]float32, size)
		for i := range xs[d] {
			xs[d][i] = float32(rng.NormFloat64() * math.Pow(10, float64(rng.IntN(12)-6)))
		}
		args[d] = xs[d]
	}
	want := make([]float32, size)
	for i := range want {
		want[i] = ((xs[0][i] + xs[1][i]) + xs[2][i]) + xs[3][i]
	}
	e := MustNewExec(b, func(x *Node) *Node {
		return x.Graph().Distributed().AllReduceOne(x, backends.ReduceOpSum)
	}).SPMD(mesh(t, []int{n}, "data"))
	for run := range 5 {
		outs := e.MustExec(args...)
		for d := range n {
			got := tensors.MustCopyFlatData[float32](outs[d])
			for i := range got {
				if math.Float32bits(got[i]) != math.Float32bits(want[i]) {
					t.Fatalf("run %d, device %d, element %d: %g (bits %x), want %g (bits %x)", run, d, i, got[i],
						math.Float32bits(got[i]), want[i], math.Float32bits(want[i]))
				}
			}
		}
	}
}

// TestConvAllReduce runs a data-parallel step's pattern on 2 devices (each device's
// convolution, its gradient with respect to the kernel, and their sums over the devices)
// and compares each device's values with the same program on one device.
func TestConvAllReduce(t *testing.T) {
	for _, config := range []string{"go", "go:kernels=off"} {
		t.Run(config, func(t *testing.T) {
			rng := rand.New(rand.NewPCG(7, 8))
			xs := []*tensors.Tensor{randTensor32(rng, 4, 8, 8, 3), randTensor32(rng, 4, 8, 8, 3)}
			k := randTensor32(rng, 3, 3, 3, 5)
			local := func(x, k *Node) (y, loss, grad *Node) {
				y = Convolve(x, k).PadSame().Done()
				loss = ReduceAllSum(Square(y))
				return y, loss, Gradient(loss, k)[0]
			}
			one := newBackend(t, config)
			single := MustNewExec(one, func(x, k *Node) []*Node {
				y, loss, grad := local(x, k)
				return []*Node{y, loss, grad}
			})
			config2 := config + ":devices=2"
			if strings.Contains(config, ":") {
				config2 = config + ",devices=2"
			}
			spmd := MustNewExec(newBackend(t, config2), func(x, k *Node) []*Node {
				y, loss, grad := local(x, k)
				sums := x.Graph().Distributed().AllReduce([]*Node{loss, grad}, backends.ReduceOpSum)
				return []*Node{y, sums[0], sums[1]}
			}).SPMD(mesh(t, []int{2}, "data"))
			outs := spmd.MustExec(cl(xs[0]), cl(k), cl(xs[1]), cl(k)) // a tensor on one device is not moved to another
			var ys [2][]float32
			var loss float32
			var grad []float32
			for d := range 2 {
				o := single.MustExec(xs[d], k)
				ys[d] = tensors.MustCopyFlatData[float32](o[0])
				loss += tensors.MustCopyFlatData[float32](o[1])[0]
				g := tensors.MustCopyFlatData[float32](o[2])
				if grad == nil {
					grad = g
				} else {
					for i := range grad {
						grad[i] += g[i]
					}
				}
			}
			for d := range 2 {
				if got := tensors.MustCopyFlatData[float32](outs[3*d]); !slices.Equal(got, ys[d]) {
					t.Errorf("device %d: convolution differs from one device's", d)
				}
				if got := tensors.MustCopyFlatData[float32](outs[3*d+1])[0]; got != loss {
					t.Errorf("device %d: summed loss %g, want %g", d, got, loss)
				}
				if got := tensors.MustCopyFlatData[float32](outs[3*d+2]); !slices.Equal(got, grad) {
					t.Errorf("device %d: summed gradient differs: %v... want %v...", d, got[:4], grad[:4])
				}
			}
		})
	}
}

func randTensor32(rng *rand.Rand, dims ...int) *tensors.Tensor {
	n := 1
	for _, d := range dims {
		n *= d
	}
	return tensors.FromFlatDataAndDimensions(randFloat32(rng, n), dims...)
}

// TestSingleDeviceOnDevice runs a one-device program on each device of a 3-device backend:
// its inputs and outputs are buffers of that device.
func TestSingleDeviceOnDevice(t *testing.T) {
	b := newBackend(t, "go:devices=3")
	e := MustNewExec(b, func(x, y *Node) *Node { return Add(Mul(x, y), x) })
	for d := range backends.DeviceNum(3) {
		outs, _, err := e.ExecWithGraphOnDevice(d, []float32{1, 2, 3}, []float32{4, 5, 6})
		if err != nil {
			t.Fatal(err)
		}
		if got := tensors.MustCopyFlatData[float32](outs[0]); !slices.Equal(got, []float32{5, 12, 21}) {
			t.Errorf("device %d: %v", d, got)
		}
	}
	// Through the executable, to see the outputs' device.
	builder := b.Builder("direct")
	x, _ := builder.Parameter("x", shapes.Make(dtypes.Float32, 2), nil)
	y, _ := builder.Neg(x)
	exec, err := builder.Compile([]backends.Op{y}, nil)
	if err != nil {
		t.Fatal(err)
	}
	for d := range backends.DeviceNum(3) {
		in, _ := b.BufferFromFlatData(d, []float32{1, -2}, shapes.Make(dtypes.Float32, 2))
		out, err := exec.Execute([]backends.Buffer{in}, []bool{true}, d)
		if err != nil {
			t.Fatal(err)
		}
		if dev, _ := b.BufferDeviceNum(out[0]); dev != d {
			t.Errorf("output on device %d, want %d", dev, d)
		}
		f, _ := b.BufferData(out[0])
		if !slices.Equal(f.([]float32), []float32{-1, 2}) {
			t.Errorf("device %d: %v", d, f)
		}
	}
	if _, err := exec.Execute([]backends.Buffer{nil}, nil, 3); err == nil {
		t.Error("device 3 of 3: no error")
	}
}

// TestSPMDRefusals: more devices than the backend has, real sharding, automatic sharding,
// bad device assignments and replica groups are errors.
func TestSPMDRefusals(t *testing.T) {
	b := newBackend(t, "go:devices=2")
	if err := b.Builder("x").DistributedSPMD(3); err == nil {
		t.Error("SPMD on 3 of 2 devices: no error")
	}
	if err := newBackend(t, "go").Builder("x").DistributedSPMD(2); err == nil || !strings.Contains(err.Error(), "devices=N") {
		t.Errorf("SPMD on a one-device backend: %v", err)
	}
	if err := b.Builder("x").DistributedAutoSharding(); err == nil {
		t.Error("automatic sharding: no error")
	}
	bld := b.Builder("x")
	if err := bld.DistributedSPMD(2); err != nil {
		t.Fatal(err)
	}
	for _, devs := range [][]backends.DeviceNum{{0}, {0, 0}, {0, 2}, {1, 0, 1}} {
		if err := bld.DeviceAssignment(devs...); err == nil {
			t.Errorf("DeviceAssignment %v: no error", devs)
		}
	}
	if err := bld.DeviceAssignment(1, 0); err != nil {
		t.Errorf("DeviceAssignment [1 0]: %v", err)
	}
	s := shapes.Make(dtypes.Float32, 4)
	if _, err := bld.Parameter("sharded", s, &backends.ShardingSpec{Mesh: "m", Axes: [][]string{{"data"}}}); err == nil {
		t.Error("a sharded parameter: no error")
	}
	x, err := bld.Parameter("replicated", s, &backends.ShardingSpec{Mesh: "m", Axes: [][]string{{}}})
	if err != nil {
		t.Fatalf("a replicated parameter: %v", err)
	}
	for _, groups := range [][][]int{{{0, 2}}, {{0, 1}, {1}}, {{-1}}} {
		if _, err := bld.AllReduce([]backends.Op{x}, backends.ReduceOpSum, groups); err == nil {
			t.Errorf("replica groups %v: no error", groups)
		}
	}
	if _, err := bld.AllReduce([]backends.Op{x}, backends.ReduceOpUndefined, nil); err == nil {
		t.Error("AllReduce with an undefined reduction: no error")
	}
}

// TestAllReduceDirect builds an SPMD program with the backend's builder: the inputs are
// device-major, the outputs come back device-major and on their devices, and a device in
// no replica group keeps its own values.
func TestAllReduceDirect(t *testing.T) {
	b := newBackend(t, "go:devices=3")
	bld := b.Builder("direct")
	if err := bld.DistributedSPMD(3); err != nil {
		t.Fatal(err)
	}
	if err := bld.DeviceAssignment(2, 0, 1); err != nil {
		t.Fatal(err)
	}
	s := shapes.Make(dtypes.Int64, 2)
	x, _ := bld.Parameter("x", s, nil)
	y, _ := bld.Parameter("y", s, nil)
	xy, _ := bld.Add(x, y)
	r, err := bld.AllReduce([]backends.Op{xy}, backends.ReduceOpSum, [][]int{{0, 1}})
	if err != nil {
		t.Fatal(err)
	}
	exec, err := bld.Compile([]backends.Op{r[0], x}, nil)
	if err != nil {
		t.Fatal(err)
	}
	assignment := []backends.DeviceNum{2, 0, 1}
	var in []backends.Buffer
	for i, v := range [][2][]int64{{{1, 2}, {10, 20}}, {{3, 4}, {30, 40}}, {{5, 6}, {50, 60}}} {
		for _, flat := range v {
			buf, _ := b.BufferFromFlatData(assignment[i], flat, s)
			in = append(in, buf)
		}
	}
	outs, err := exec.Execute(in, []bool{true, false, true, false, true, false}, 0)
	if err != nil {
		t.Fatal(err)
	}
	want := [][]int64{{44, 66}, {1, 2}, {44, 66}, {3, 4}, {55, 66}, {5, 6}}
	for i, o := range outs {
		f, _ := b.BufferData(o)
		if !slices.Equal(f.([]int64), want[i]) {
			t.Errorf("output %d: %v, want %v", i, f, want[i])
		}
		if d, _ := b.BufferDeviceNum(o); d != assignment[i/2] {
			t.Errorf("output %d on device %d, want %d", i, d, assignment[i/2])
		}
	}
	if _, err := exec.Execute(in[:3], nil, 0); err == nil {
		t.Error("3 inputs for 3 devices of 2 parameters: no error")
	}
}

package kernels

import (
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"regexp"
	"runtime"
	"sort"
	"strings"
	"testing"
	"time"
)

// convNetLayer is one distinct convolution of a network and how many times it occurs.
type convNetLayer struct {
	name  string
	count int
	s     ConvShape
	data  bool // whether training computes its input gradient (not for the stem)
}

// conv3x3 and conv1x1 build the ResNet layers: same padding, stride 1 or 2.
func conv3x3(n, hw, c, o, stride int) ConvShape {
	return ConvShape{N: n, H: hw, W: hw, C: c, KH: 3, KW: 3, O: o, StrideH: stride, StrideW: stride, DilH: 1, DilW: 1,
		PadTop: 1, PadBottom: 1, PadLeft: 1, PadRight: 1}
}

func conv1x1(n, hw, c, o, stride int) ConvShape {
	return ConvShape{N: n, H: hw, W: hw, C: c, KH: 1, KW: 1, O: o, StrideH: stride, StrideW: stride, DilH: 1, DilW: 1}
}

// cifarNetLayers are the convolutions of the train-step benchmark's CIFAR ResNet (ResNet-18
// layout, widths 16 to 128, 3x3 stride-1 stem, batch 64): 13.4 GFLOP for forward and both
// gradients.
func cifarNetLayers(n int) []convNetLayer {
	return []convNetLayer{
		{"stem_32x32_3-16", 1, conv3x3(n, 32, 3, 16, 1), false},
		{"32x32_16-16", 4, conv3x3(n, 32, 16, 16, 1), true},
		{"32x32_16-32_s2", 1, conv3x3(n, 32, 16, 32, 2), true},
		{"32x32_16-32_1x1s2", 1, conv1x1(n, 32, 16, 32, 2), true},
		{"16x16_32-32", 3, conv3x3(n, 16, 32, 32, 1), true},
		{"16x16_32-64_s2", 1, conv3x3(n, 16, 32, 64, 2), true},
		{"16x16_32-64_1x1s2", 1, conv1x1(n, 16, 32, 64, 2), true},
		{"8x8_64-64", 3, conv3x3(n, 8, 64, 64, 1), true},
		{"8x8_64-128_s2", 1, conv3x3(n, 8, 64, 128, 2), true},
		{"8x8_64-128_1x1s2", 1, conv1x1(n, 8, 64, 128, 2), true},
		{"4x4_128-128", 3, conv3x3(n, 4, 128, 128, 1), true},
	}
}

// r18NetLayers are the convolutions of ResNet-18 at 224x224.
func r18NetLayers(n int) []convNetLayer {
	stem := ConvShape{N: n, H: 224, W: 224, C: 3, KH: 7, KW: 7, O: 64, StrideH: 2, StrideW: 2, DilH: 1, DilW: 1,
		PadTop: 3, PadBottom: 3, PadLeft: 3, PadRight: 3}
	return []convNetLayer{
		{"stem_224_7x7s2_3-64", 1, stem, false},
		{"56x56_64-64", 4, conv3x3(n, 56, 64, 64, 1), true},
		{"56x56_64-128_s2", 1, conv3x3(n, 56, 64, 128, 2), true},
		{"56x56_64-128_1x1s2", 1, conv1x1(n, 56, 64, 128, 2), true},
		{"28x28_128-128", 3, conv3x3(n, 28, 128, 128, 1), true},
		{"28x28_128-256_s2", 1, conv3x3(n, 28, 128, 256, 2), true},
		{"28x28_128-256_1x1s2", 1, conv1x1(n, 28, 128, 256, 2), true},
		{"14x14_256-256", 3, conv3x3(n, 14, 256, 256, 1), true},
		{"14x14_256-512_s2", 1, conv3x3(n, 14, 256, 512, 2), true},
		{"14x14_256-512_1x1s2", 1, conv1x1(n, 14, 256, 512, 2), true},
		{"7x7_512-512", 3, conv3x3(n, 7, 512, 512, 1), true},
	}
}

func (l convNetLayer) flops() float64 {
	s := l.s
	return 2 * float64(s.N*s.OutH()*s.OutW()) * float64(s.KH*s.KW*s.C*s.O)
}

// benchConvNetwork runs forward, backward data and backward filter of every distinct layer
// once per iteration and weights each by its count: ms/op is one training step's
// convolutions. Per layer and kernel it reports the fastest iteration's milliseconds (the
// least disturbed by other processes on a shared machine), and logs a table.
func benchConvNetwork[T Float](b *testing.B, layers []convNetLayer) {
	type op struct {
		name string
		run  func()
		w    float64 // count
		fl   float64
		best time.Duration
		sum  time.Duration
		cpu  time.Duration // best thread CPU time
	}
	var ops []*op
	rng := rand.New(rand.NewPCG(21, 22))
	totalFlops := 0.0
	// CONVNET_LAYERS, a regular expression, picks layers by name.
	if pat := os.Getenv("CONVNET_LAYERS"); pat != "" {
		re := regexp.MustCompile(pat)
		var picked []convNetLayer
		for _, l := range layers {
			if re.MatchString(l.name) {
				picked = append(picked, l)
			}
		}
		layers = picked
	}
	for _, l := range layers {
		s := l.s
		x := randSlice[T](rng, s.N*s.H*s.W*s.C)
		k := randSlice[T](rng, s.KH*s.KW*s.C*s.O)
		dy := randSlice[T](rng, s.N*s.OutH()*s.OutW()*s.O)
		y, dx, dk := make([]T, len(dy)), make([]T, len(x)), make([]T, len(k))
		w, fl := float64(l.count), l.flops()
		ops = append(ops, &op{name: l.name + "/fwd", run: func() { ConvForward(s, x, k, y) }, w: w, fl: fl})
		if l.data {
			ops = append(ops, &op{name: l.name + "/data", run: func() { ConvBackwardData(s, dy, k, true, dx) }, w: w, fl: fl})
		}
		ops = append(ops, &op{name: l.name + "/filter", run: func() { ConvBackwardFilter(s, x, dy, dk) }, w: w, fl: fl})
	}
	for _, o := range ops {
		o.run() // touch every page first
		o.best, o.cpu = time.Hour, time.Hour
		totalFlops += o.w * o.fl
	}
	// With GOMAXPROCS 1 the kernels run on this goroutine, locked to its thread, and its
	// CPU time measures them without other processes' turns.
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	single := runtime.GOMAXPROCS(0) == 1
	var ms0, ms1 runtime.MemStats
	runtime.ReadMemStats(&ms0)
	cpu0 := processCPUTime()
	var wall time.Duration
	for b.Loop() {
		for _, o := range ops {
			c0 := threadCPUTime()
			t0 := time.Now()
			o.run()
			d := time.Since(t0)
			o.cpu = min(o.cpu, threadCPUTime()-c0)
			o.sum += d
			o.best = min(o.best, d)
			wall += time.Duration(o.w * float64(d))
		}
	}
	runtime.ReadMemStats(&ms1)
	// Fresh memory is slow to touch: the bytes the kernels allocate a step (unweighted).
	b.ReportMetric(float64(ms1.TotalAlloc-ms0.TotalAlloc)/float64(b.N)/1e6, "MB-alloc/iter")
	step := wall.Seconds() / float64(b.N)
	b.ReportMetric(step*1000, "ms/step")
	b.ReportMetric(totalFlops/step/1e9, "GFLOP/s")
	bestStep, cpuStep := 0.0, 0.0
	for _, o := range ops {
		bestStep += o.w * o.best.Seconds()
		cpuStep += o.w * o.cpu.Seconds()
	}
	b.ReportMetric(bestStep*1000, "best-ms/step")
	if single && cpuStep > 0 {
		b.ReportMetric(cpuStep*1000, "thread-cpu-ms/step")
	}
	if cpu := processCPUTime() - cpu0; cpu > 0 {
		// Weighted work over the CPU time of unweighted runs: scale the CPU time by the
		// weighted / unweighted wall ratio.
		unweighted := time.Duration(0)
		for _, o := range ops {
			unweighted += o.sum
		}
		b.ReportMetric(totalFlops*float64(b.N)/(cpu.Seconds()*wall.Seconds()/unweighted.Seconds())/1e9, "GFLOP/cpu-s")
	}
	var sb strings.Builder
	fmt.Fprintf(&sb, "%-28s %6s %9s %9s %8s %6s %9s\n", "layer/kernel", "count", "best ms", "mean ms", "GFLOP/s", "share", "cpu ms")
	sorted := append([]*op(nil), ops...)
	sort.SliceStable(sorted, func(i, j int) bool { return sorted[i].w*float64(sorted[i].best) > sorted[j].w*float64(sorted[j].best) })
	if os.Getenv("CONVNET_ORDER") == "" {
		sorted = ops
	}
	for _, o := range sorted {
		cpu := math.NaN() // thread CPU time only measures the kernel with one CPU
		if single {
			cpu = o.cpu.Seconds() * 1000
		}
		fmt.Fprintf(&sb, "%-28s %6.0f %9.3f %9.3f %8.1f %5.1f%% %9.3f\n", o.name, o.w, o.best.Seconds()*1000,
			o.sum.Seconds()*1000/float64(b.N), o.fl/o.best.Seconds()/1e9, 100*o.w*o.best.Seconds()/bestStep, cpu)
	}
	fmt.Fprintf(&sb, "total (weighted best) %.1f ms, %.1f GFLOP, %.1f GFLOP/s", bestStep*1000, totalFlops/1e9, totalFlops/bestStep/1e9)
	if single {
		fmt.Fprintf(&sb, "; thread CPU %.1f ms, %.1f GFLOP/cpu-s", cpuStep*1000, totalFlops/cpuStep/1e9)
	}
	b.Log("\n" + sb.String())
}

// BenchmarkConvNetwork times the convolutions of one training step (forward, input and
// kernel gradients of every layer, weighted by how often the layer occurs): the CIFAR
// ResNet at batch 64, and ResNet-18 at 224x224 at batch 8 (a quarter of the training
// batch of 32, to keep the benchmark short), in float32 and (CIFAR) float64.
func BenchmarkConvNetwork(b *testing.B) {
	b.Run("cifar_b64_f32", func(b *testing.B) { benchConvNetwork[float32](b, cifarNetLayers(64)) })
	b.Run("cifar_b64_f64", func(b *testing.B) { benchConvNetwork[float64](b, cifarNetLayers(64)) })
	b.Run("r18_b8_f32", func(b *testing.B) { benchConvNetwork[float32](b, r18NetLayers(8)) })
}

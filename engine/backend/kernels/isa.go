package kernels

// isa is an instruction set that the kernels have a path for.
type isa int

const (
	isaGo     isa = iota // plain Go
	isaAVX2              // AVX2 and FMA
	isaAVX512            // AVX-512 F (and BW, DQ, VL)
)

func (i isa) String() string {
	switch i {
	case isaAVX2:
		return "avx2"
	case isaAVX512:
		return "avx512"
	}
	return "go"
}

// hostISA is the best instruction set of this CPU that the build has assembly for; isaGo
// with the purego build tag or on other architectures.
var hostISA = detectISA()

// activeISA is the path the kernels take: hostISA, except in tests, which run every path
// that this CPU supports.
var activeISA = hostISA

// supportedISAs lists the paths this CPU can run, plain Go first.
func supportedISAs() []isa {
	out := []isa{isaGo}
	if hostISA >= isaAVX2 {
		out = append(out, isaAVX2)
	}
	if hostISA >= isaAVX512 {
		out = append(out, isaAVX512)
	}
	return out
}

// ISA names the instruction set the kernels use on this machine ("avx512", "avx2" or "go").
func ISA() string { return activeISA.String() }

//go:build amd64 && !purego

package kernels

import "golang.org/x/sys/cpu"

func detectISA() isa {
	switch {
	case cpu.X86.HasAVX512F && cpu.X86.HasAVX512BW && cpu.X86.HasAVX512DQ && cpu.X86.HasAVX512VL:
		return isaAVX512
	case cpu.X86.HasAVX2 && cpu.X86.HasFMA:
		return isaAVX2
	}
	return isaGo
}

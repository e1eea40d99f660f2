//go:build !amd64 || purego

package kernels

func detectISA() isa { return isaGo }

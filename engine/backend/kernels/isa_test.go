package kernels

import "testing"

// forEachISA runs fn once per instruction set this CPU supports (plain Go always), as a
// subtest named after it.
func forEachISA(t *testing.T, fn func(t *testing.T)) {
	t.Helper()
	defer func() { activeISA = hostISA }()
	for _, i := range supportedISAs() {
		activeISA = i
		t.Run(i.String(), fn)
	}
}

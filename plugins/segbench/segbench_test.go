package segbench

import "testing"

// The manifest says what the host needs without starting the plugin.
func TestManifest(t *testing.T) {
	p := Plugin()
	m := p.Manifest()
	if m.Name != "seg" || len(m.Components) != 1 || m.Components[0].Type != "MMSegBenchmark" || m.Components[0].Namespace != "benchmarks" {
		t.Errorf("manifest %v", m)
	}
}

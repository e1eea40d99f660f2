package detbench

import "testing"

// The manifest says what the host needs without starting the plugin.
func TestManifest(t *testing.T) {
	p := Plugin()
	m := p.Manifest()
	if m.Name != "det" || len(m.Components) != 1 || m.Components[0].Type != "MMDetBenchmark" || m.Components[0].Namespace != "benchmarks" {
		t.Errorf("manifest %v", m)
	}
}

// Package pyref finds the Python that runs the reference implementations (PyTorch,
// torchvision, Pillow, scikit-learn, FAISS, NumPy) that tests and benchmarks compare goselfsup with.
package pyref

import (
	"fmt"
	"os/exec"
	"strings"
)

// Python returns a python3 that can import every module of modules. Debian's
// /usr/bin/python3 comes first: Debian's python3-torch installs there, while a python3
// earlier on PATH (pyenv, a virtualenv) may not see it.
func Python(modules ...string) (string, error) {
	candidates := []string{"/usr/bin/python3"}
	if p, err := exec.LookPath("python3"); err == nil {
		candidates = append(candidates, p)
	}
	imports := "import " + strings.Join(modules, ", ")
	if len(modules) == 0 {
		imports = "pass"
	}
	for _, p := range candidates {
		if exec.Command(p, "-c", imports).Run() == nil {
			return p, nil
		}
	}
	pkgs := make([]string, len(modules))
	for i, m := range modules {
		pkgs[i] = "python3-" + strings.ToLower(m)
		if p, ok := debian[m]; ok {
			pkgs[i] = p
		}
	}
	return "", fmt.Errorf("no python3 with %s (on Debian: apt-get install %s)", strings.Join(modules, ", "), strings.Join(pkgs, " "))
}

// debian names the Debian packages of modules whose names differ from theirs.
var debian = map[string]string{"PIL": "python3-pil"}

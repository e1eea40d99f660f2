package cli

import (
	"bytes"
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"testing"

	"github.com/goselfsup/goselfsup/registry"
)

func runPrintConfig(args ...string) (code int, stdout, stderr string) {
	var out, errOut bytes.Buffer
	code = PrintConfig(args, &out, &errOut)
	return code, out.String(), errOut.String()
}

func writeFiles(t *testing.T, dir string, files map[string]string) {
	t.Helper()
	for name, text := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

const npidConfig = "configs/npid/resnet50_8xb32-steplr-200e.toml"

func TestPrintConfigNPID(t *testing.T) {
	code, out, errOut := runPrintConfig(npidConfig)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	for _, want := range []string{
		"[model]\ntype = \"NPID\"\nneg_num = 65536\n",
		"[model.backbone]\ntype = \"ResNet\"\ndepth = 50\n",
		"out_indices = [4]\n",
		"[model.neck]\ntype = \"LinearNeck\"\nin_channels = 2048\nout_channels = 128\nwith_avg_pool = true\n",
		"[model.head]\ntype = \"ContrastiveHead\"\nloss = { type = \"CrossEntropyLoss\" }\ntemperature = 0.07\n",
		"[model.memory_bank]\ntype = \"SimpleMemory\"\nfeat_dim = 128\nlength = 1281167\nmomentum = 0.5\n",
		"optimizer = { type = \"SGD\", lr = 0.03, momentum = 0.9, weight_decay = 0.0001 }\n",
		"{ type = \"MultiStepLR\", by_epoch = true, gamma = 0.1, milestones = [120, 160] },\n",
		"train_cfg = { type = \"EpochBasedTrainLoop\", max_epochs = 200 }\n",
		"env_cfg = { num_devices = 8 }\n",
		"[train_dataloader]\nbatch_size = 32\n",
		"checkpoint = { type = \"CheckpointHook\", interval = 10, max_keep_ckpts = 3 }\n",
		"logger = { type = \"LoggerHook\", interval = 50 }\n",
		`  { type = "LoadImageFromFile" },
  { type = "RandomResizedCrop", backend = "pillow", scale = [0.2, 1.0], size = 224 },
  { type = "RandomGrayscale", channel_weights = [0.114, 0.587, 0.2989], keep_channels = true, prob = 0.2 },
  { type = "ColorJitter", brightness = 0.4, contrast = 0.4, hue = 0.4, saturation = 0.4 },
  { type = "RandomFlip", prob = 0.5 },
`,
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q", want)
		}
	}
}

func TestPrintConfigSetAndExplain(t *testing.T) {
	t.Chdir("..") // the repository root, where configs/ is on disk
	code, out, errOut := runPrintConfig(npidConfig, "--set", "model.head.temperature=0.1", "--set=work_dir=runs/my run")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	if !strings.Contains(out, "temperature = 0.1\n") || !strings.Contains(out, `work_dir = "runs/my run"`) {
		t.Errorf("the overrides are not in the output:\n%s", out)
	}
	code, out, errOut = runPrintConfig("--explain", "model.head.temperature", npidConfig, "--set", "model.head.temperature=0.1")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	want := "model.head.temperature = 0.1\n" +
		"  set in configs/_base_/models/npid.toml: 0.07\n" +
		"  set by --set model.head.temperature=0.1: 0.1\n"
	if out != want {
		t.Errorf("--explain:\n%s\nwant:\n%s", out, want)
	}
}

func TestPrintConfigErrors(t *testing.T) {
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{
		"misspelled.toml": "_base_ = \"goselfsup::npid/resnet50_8xb32-steplr-200e.toml\"\n[model]\nneg_nmu = 4096\n",
		"unknown.toml":    "_base_ = \"goselfsup::npid/resnet50_8xb32-steplr-200e.toml\"\n[model.neck]\ntype = \"LinerNeck\"\n",
		"cycle_a.toml":    "_base_ = \"cycle_b.toml\"\n",
		"cycle_b.toml":    "_base_ = \"cycle_a.toml\"\n",
		"syntax.toml":     "[model]\ntype = \"NPID\"\nneg_num = 65_536_\n",
	})
	tests := []struct {
		args []string
		want []string
	}{
		{[]string{"misspelled.toml"}, []string{`model.neg_nmu: unknown key for NPID (set in ` + filepath.Join(dir, "misspelled.toml") + `); did you mean "neg_num"?`}},
		{[]string{"unknown.toml"}, []string{`model.neck.type: unknown necks type "LinerNeck"`, `did you mean "LinearNeck"?`}},
		{[]string{"cycle_a.toml"}, []string{"_base_ cycle: ", "cycle_a.toml -> ", "cycle_b.toml -> ", "cycle_a.toml"}},
		{[]string{"syntax.toml"}, []string{filepath.Join(dir, "syntax.toml") + ":3:", "neg_num = 65_536_"}},
		{[]string{npidConfig, "--set", "model.neg_num=lots"}, []string{`model.neg_num: expected an integer, got a string "lots" (set by --set model.neg_num=lots)`}},
		{[]string{"missing.toml"}, []string{"config file " + filepath.Join(dir, "missing.toml") + " not found"}},
	}
	for _, tc := range tests {
		args := append([]string(nil), tc.args...)
		if strings.HasSuffix(args[0], ".toml") && !strings.HasPrefix(args[0], "configs/") {
			args[0] = filepath.Join(dir, args[0])
		}
		code, _, errOut := runPrintConfig(args...)
		if code != 1 {
			t.Errorf("%v: exit %d, want 1", tc.args, code)
		}
		for _, w := range tc.want {
			if !strings.Contains(errOut, w) {
				t.Errorf("%v: stderr %q lacks %q", tc.args, errOut, w)
			}
		}
	}
	if code, _, _ := runPrintConfig(); code != 2 {
		t.Errorf("no config: exit %d, want 2", code)
	}
	if code, _, _ := runPrintConfig("--no-such-flag", npidConfig); code != 2 {
		t.Errorf("unknown flag: exit %d, want 2", code)
	}
}

// Outside the repository, the shipped configs still load (from the binary), and a user's
// config may inherit them.
func TestPrintConfigOutsideRepository(t *testing.T) {
	dir := t.TempDir()
	t.Chdir(dir)
	writeFiles(t, dir, map[string]string{
		"mine.toml": "_base_ = \"goselfsup::npid/resnet50_8xb32-steplr-200e.toml\"\n[model.memory_bank]\nlength = 50000\n",
	})
	code, out, errOut := runPrintConfig(npidConfig)
	if code != 0 || !strings.Contains(out, "neg_num = 65536") {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	code, out, errOut = runPrintConfig("mine.toml", "--explain", "model.memory_bank.length")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	want := "model.memory_bank.length = 50000\n  set in goselfsup::_base_/models/npid.toml: 1281167\n  set in mine.toml: 50000\n"
	if out != want {
		t.Errorf("--explain:\n%s\nwant:\n%s", out, want)
	}
	code, out, _ = runPrintConfig("--list")
	if code != 0 || !strings.Contains(out, "goselfsup::npid/resnet50_8xb32-steplr-200e.toml\n") {
		t.Errorf("--list: %d %s", code, out)
	}
	code, out, _ = runPrintConfig("--components")
	if code != 0 || !strings.Contains(out, "backbones:\n  ResNet ") {
		t.Errorf("--components: %d %s", code, out)
	}
}

func TestPrintConfigDescribe(t *testing.T) {
	code, out, errOut := runPrintConfig("--describe", "ResNet")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	for _, want := range []*regexp.Regexp{
		regexp.MustCompile(`^backbones\.ResNet: ResNet 18/34/50/101`),
		regexp.MustCompile(`\n  key +type +default +doc\n`),
		regexp.MustCompile(`\n  depth +int +\(required\) +the network's depth: 18, 34, 50 or 101\n`),
		regexp.MustCompile(`\n  out_indices +array of int +\[4\] +the outputs the backbone returns: 0 is the stem, 1\.\.4 the stages\n`),
		regexp.MustCompile(`\n  frozen_stages +int +-1 +`),
		regexp.MustCompile(`\n  norm_cfg\.momentum +float +0\.1 +`),
		regexp.MustCompile(`\n  stage_blocks +array of int +- +`),
		regexp.MustCompile(`\nregistered at \S*models/resnet\.go:\d+\n$`),
	} {
		if !want.MatchString(out) {
			t.Errorf("--describe ResNet lacks %s:\n%s", want, out)
		}
	}
	// The CIFAR variant embeds ResNet's config: its keys are ResNet's, inlined.
	code, out, errOut = runPrintConfig("--describe", "backbones.ResNet_CIFAR")
	if code != 0 || !strings.Contains(out, "\n  depth ") || !regexp.MustCompile(`registered at \S*models/resnet_cifar\.go:\d+`).MatchString(out) {
		t.Errorf("--describe backbones.ResNet_CIFAR: exit %d\n%s%s", code, out, errOut)
	}
	code, out, errOut = runPrintConfig("--describe", "LinearClsHead")
	if code != 0 || !regexp.MustCompile(`\n  loss +component of losses +\{ type = "CrossEntropyLoss" \} +`).MatchString(out) {
		t.Errorf("--describe LinearClsHead: exit %d\n%s%s", code, out, errOut)
	}

	code, out, errOut = runPrintConfig("--describe", "NoSuchType")
	if code != 1 || out != "" || !strings.Contains(errOut, `no component is registered as "NoSuchType"; nearest: `) ||
		!strings.Contains(errOut, "print_config --components lists them all") {
		t.Errorf("--describe NoSuchType: exit %d\n%s%s", code, out, errOut)
	}
	code, _, errOut = runPrintConfig("--describe", "Resnet50")
	if code != 1 || !strings.Contains(errOut, "nearest: backbones.ResNet, ") {
		t.Errorf("--describe Resnet50: exit %d\n%s", code, errOut)
	}
	code, _, errOut = runPrintConfig("--describe", "heads.ResNet")
	if code != 1 || !strings.Contains(errOut, `no component is registered as "heads.ResNet"; nearest: backbones.ResNet, `) {
		t.Errorf("--describe heads.ResNet: exit %d\n%s", code, errOut)
	}
	if code, _, _ := runPrintConfig("--describe", "ResNet", npidConfig); code != 2 {
		t.Errorf("--describe with a config: exit %d, want 2", code)
	}
}

// Each component of models, heads, losses and datasets sits in one file: the file that
// registers it declares its config type and the config's Validate and Build, and documents
// every key.
func TestComponentsOneFileEach(t *testing.T) {
	packages := map[string]map[string]string{} // dir -> "Type.Method" or "Type" -> file
	declared := func(dir string) map[string]string {
		if m, ok := packages[dir]; ok {
			return m
		}
		m := map[string]string{}
		files, _ := filepath.Glob(filepath.Join(dir, "*.go"))
		for _, f := range files {
			if strings.HasSuffix(f, "_test.go") {
				continue
			}
			file, err := parser.ParseFile(token.NewFileSet(), f, nil, parser.SkipObjectResolution)
			if err != nil {
				t.Fatal(err)
			}
			for _, d := range file.Decls {
				switch d := d.(type) {
				case *ast.GenDecl:
					for _, s := range d.Specs {
						if ts, ok := s.(*ast.TypeSpec); ok {
							m[ts.Name.Name] = f
						}
					}
				case *ast.FuncDecl:
					if d.Recv != nil {
						if star, ok := d.Recv.List[0].Type.(*ast.StarExpr); ok {
							if id, ok := star.X.(*ast.Ident); ok {
								m[id.Name+"."+d.Name.Name] = f
							}
						}
					}
				}
			}
		}
		packages[dir] = m
		return m
	}
	checked := 0
	for _, ns := range registry.Default.Namespaces() {
		for _, c := range registry.Default.List(ns) {
			file, _, _ := strings.Cut(c.Source(), ":")
			if !filepath.IsAbs(file) {
				continue
			}
			checked++
			cfg := reflect.TypeOf(c.New()).Elem().Name()
			decls := declared(filepath.Dir(file))
			for _, name := range []string{cfg, cfg + ".Build", cfg + ".Validate"} {
				if f, ok := decls[name]; ok && f != file {
					t.Errorf("%s is registered in %s but %s is declared in %s", c.ID(), file, name, f)
				} else if !ok && name != cfg+".Validate" {
					t.Errorf("%s: %s is not declared in its package", c.ID(), name)
				}
			}
			d, err := registry.Default.Describe(c.Namespace, c.Type)
			if err != nil {
				t.Fatal(err)
			}
			for _, k := range d.Keys {
				if k.Doc == "" {
					t.Errorf("%s: key %s has no doc tag", c.ID(), k.Name)
				}
			}
		}
	}
	if checked < 50 {
		t.Errorf("checked %d components; are the sources absolute paths?", checked)
	}
}

// A derived config whose schedule no longer fits its length fails print_config, naming the
// scheduler and the file that set its milestones.
func TestPrintConfigChecksKeysAgainstEachOther(t *testing.T) {
	code, _, errOut := run(PrintConfig, "configs/npid/resnet50_8xb32-steplr-200e.toml", "--set", "train_cfg.max_epochs=100")
	want := "param_scheduler.0: milestones [120 160]: 120 is beyond the run's 100 epochs"
	if code != 1 || !strings.Contains(errOut, want) || !strings.Contains(errOut, "sgd_steplr-200e_in1k.toml") {
		t.Errorf("exit %d, want 1 and %q:\n%s", code, want, errOut)
	}
}

package det_test

import (
	"bytes"
	"encoding/json"
	"math"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"

	"github.com/gomlx/gomlx/backends"
	"github.com/gomlx/gomlx/pkg/core/dtypes"
	. "github.com/gomlx/gomlx/pkg/core/graph"
	"github.com/gomlx/gomlx/pkg/core/tensors"

	"github.com/goselfsup/goselfsup/engine/backend"
	"github.com/goselfsup/goselfsup/internal/pyref"
	"github.com/goselfsup/goselfsup/models/det"
	"github.com/goselfsup/goselfsup/registry"
)

var (
	pureGoOnce    sync.Once
	pureGoBackend backends.Backend
	pureGoErr     error
)

// pureGo is the CPU backend the graph tests run on, one for the package.
func pureGo(t *testing.T) backends.Backend {
	t.Helper()
	pureGoOnce.Do(func() { pureGoBackend, pureGoErr = backend.New("go") })
	if pureGoErr != nil {
		t.Fatal(pureGoErr)
	}
	return pureGoBackend
}

// numpyPython returns a Python with NumPy, or skips the test.
func numpyPython(t *testing.T) string {
	t.Helper()
	python, err := pyref.Python("numpy")
	if err != nil {
		t.Skip(err)
	}
	return python
}

// runAnchorReference runs benchmarks/det_anchor_reference.py in mode with req as JSON on
// stdin and decodes its JSON answer into resp.
func runAnchorReference(t *testing.T, python, mode string, req, resp any) {
	t.Helper()
	in, err := json.Marshal(req)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(python, filepath.Join("..", "..", "benchmarks", "det_anchor_reference.py"), mode)
	cmd.Stdin = bytes.NewReader(in)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("det_anchor_reference.py %s: %v\n%s", mode, err, stderr.String())
	}
	if err := json.Unmarshal(out, resp); err != nil {
		t.Fatalf("det_anchor_reference.py %s: %v", mode, err)
	}
}

// tolerance is the comparison bound of a dtype against the NumPy reference, relative to
// max(1, |want|).
func tolerance(dt dtypes.DType) float64 {
	if dt == dtypes.Float32 {
		return 1e-5
	}
	return 1e-9
}

func near(got, want, tol float64) bool {
	return math.Abs(got-want) <= tol*math.Max(1, math.Abs(want))
}

// flat64 returns a float tensor's values as float64.
func flat64(t *testing.T, tt *tensors.Tensor) []float64 {
	t.Helper()
	switch tt.DType() {
	case dtypes.Float32:
		v := tensors.MustCopyFlatData[float32](tt)
		out := make([]float64, len(v))
		for i, x := range v {
			out[i] = float64(x)
		}
		return out
	case dtypes.Float64:
		return tensors.MustCopyFlatData[float64](tt)
	}
	t.Fatalf("unexpected dtype %s", tt.DType())
	return nil
}

func flatten2(rows [][]float64) []float64 {
	var out []float64
	for _, r := range rows {
		out = append(out, r...)
	}
	return out
}

// compareFlat reports the elements of got that differ from want beyond tol.
func compareFlat(t *testing.T, what string, got, want []float64, tol float64) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: %d values, want %d", what, len(got), len(want))
	}
	bad := 0
	for i := range got {
		if !near(got[i], want[i], tol) {
			if bad < 5 {
				t.Errorf("%s[%d] = %.12g, want %.12g", what, i, got[i], want[i])
			}
			bad++
		}
	}
	if bad > 0 {
		t.Errorf("%s: %d of %d values differ", what, bad, len(got))
	}
}

// anchorRequest is det_anchor_reference.py's anchors request.
type anchorRequest struct {
	Strides         []int       `json:"strides"`
	Ratios          []float64   `json:"ratios"`
	Scales          []float64   `json:"scales,omitempty"`
	OctaveBaseScale float64     `json:"octave_base_scale,omitempty"`
	ScalesPerOctave int         `json:"scales_per_octave,omitempty"`
	BaseSizes       []int       `json:"base_sizes,omitempty"`
	CenterOffset    float64     `json:"center_offset"`
	ScaleMajor      bool        `json:"scale_major"`
	Level           int         `json:"level"`
	FeatH           int         `json:"feat_h"`
	FeatW           int         `json:"feat_w"`
	DType           string      `json:"dtype"`
	Valid           []validCase `json:"valid"`
}

type validCase struct {
	PadShape      [2]int  `json:"pad_shape"`
	ImgShape      [2]int  `json:"img_shape"`
	AllowedBorder float64 `json:"allowed_border"`
}

// TestAnchorsMatchNumPy compares the anchors and their valid flags with the NumPy
// transcription of mmdet 2.x's AnchorGenerator and anchor_inside_flags: float64 to 1e-9,
// float32 to 1e-5 (the flags exactly).
func TestAnchorsMatchNumPy(t *testing.T) {
	python := numpyPython(t)
	b := pureGo(t)
	valid := []validCase{
		{[2]int{96, 128}, [2]int{75, 100}, 0}, // a padded image: border anchors and padding out
		{[2]int{64, 64}, [2]int{64, 50}, -1},  // allowed_border -1: only the padding rows out
		{[2]int{96, 128}, [2]int{96, 128}, 0}, // the whole canvas
		{[2]int{32, 48}, [2]int{20, 40}, 8},   // a border of 8 pixels allowed
	}
	cases := []*det.AnchorGenerator{
		// The R50-C4 RPN.
		{Strides: []int{16}, Ratios: []float64{0.5, 1, 2}, Scales: []float64{2, 4, 8, 16, 32}, ScaleMajor: true},
		// Two levels, scale-major off, centre offset 0.5, explicit base sizes.
		{Strides: []int{4, 8}, Ratios: []float64{0.5, 1, 2}, Scales: []float64{8, 3}, BaseSizes: []int{6, 10}, CenterOffset: 0.5},
		// RetinaNet-style octave scales.
		{Strides: []int{8}, Ratios: []float64{0.5, 1.0, 2.0}, OctaveBaseScale: 4, ScalesPerOctave: 3, ScaleMajor: true},
	}
	for ci, gen := range cases {
		if err := gen.Validate(); err != nil {
			t.Fatal(err)
		}
		level := len(gen.Strides) - 1
		featH, featW := 6, 8
		for _, dt := range []dtypes.DType{dtypes.Float64, dtypes.Float32} {
			req := anchorRequest{Strides: gen.Strides, Ratios: gen.Ratios, Scales: gen.Scales,
				OctaveBaseScale: gen.OctaveBaseScale, ScalesPerOctave: gen.ScalesPerOctave, BaseSizes: gen.BaseSizes,
				CenterOffset: gen.CenterOffset, ScaleMajor: gen.ScaleMajor, Level: level, FeatH: featH, FeatW: featW,
				DType: map[dtypes.DType]string{dtypes.Float32: "float32", dtypes.Float64: "float64"}[dt], Valid: valid}
			var resp struct {
				Base    [][]float64 `json:"base"`
				Anchors [][]float64 `json:"anchors"`
				Valid   [][]bool    `json:"valid"`
			}
			runAnchorReference(t, python, "anchors", req, &resp)
			anchors, err := gen.Anchors(level, featH, featW, dt)
			if err != nil {
				t.Fatal(err)
			}
			n := featH * featW * gen.NumBaseAnchors()
			if got := anchors.Shape().Dimensions; got[0] != n || got[1] != 4 {
				t.Fatalf("case %d: anchors shape %v, want [%d 4]", ci, got, n)
			}
			var base []float64
			if dt == dtypes.Float32 {
				for _, a := range det.BaseAnchors[float32](gen, level) {
					base = append(base, float64(a[0]), float64(a[1]), float64(a[2]), float64(a[3]))
				}
			} else {
				for _, a := range det.BaseAnchors[float64](gen, level) {
					base = append(base, a[:]...)
				}
			}
			compareFlat(t, "base anchors", base, flatten2(resp.Base), tolerance(dt))
			compareFlat(t, "anchors", flat64(t, anchors), flatten2(resp.Anchors), tolerance(dt))

			// The flags, one image at a time and all at once.
			for vi, v := range valid {
				flags := MustExecOnce(b, func(a, pad, img *Node) *Node {
					return gen.ValidFlags(a, level, featH, featW, pad, img, v.AllowedBorder)
				}, anchors, v.PadShape[:], v.ImgShape[:])
				got := tensors.MustCopyFlatData[bool](flags)
				for i := range got {
					if got[i] != resp.Valid[vi][i] {
						t.Fatalf("case %d %s valid case %d: flag %d = %v, want %v", ci, dt, vi, i, got[i], resp.Valid[vi][i])
					}
				}
			}
			pads := [][]int32{{96, 128}, {96, 128}}
			imgs := [][]int32{{75, 100}, {96, 128}}
			flags := MustExecOnce(b, func(a, pad, img *Node) *Node {
				return gen.ValidFlags(a, level, featH, featW, pad, img, 0)
			}, anchors, pads, imgs)
			got := tensors.MustCopyFlatData[bool](flags)
			for i := range n {
				if got[i] != resp.Valid[0][i] || got[n+i] != resp.Valid[2][i] {
					t.Fatalf("case %d %s batched flags differ at %d", ci, dt, i)
				}
			}
		}
	}
}

// TestAnchorsR50C4 checks the R50-C4 anchors by hand: 15 per location, ratio-major,
// centred on the grid point (center_offset 0), 32 to 512 pixels.
func TestAnchorsR50C4(t *testing.T) {
	gen := &det.AnchorGenerator{Strides: []int{16}, Ratios: []float64{0.5, 1, 2}, Scales: []float64{2, 4, 8, 16, 32}, ScaleMajor: true}
	if gen.NumBaseAnchors() != 15 {
		t.Fatalf("NumBaseAnchors = %d, want 15", gen.NumBaseAnchors())
	}
	base := det.BaseAnchors[float64](gen, 0)
	// Index 5 = ratio 1 (second), scale 2 (first): a 32x32 square around (0, 0).
	if base[5] != [4]float64{-16, -16, 16, 16} {
		t.Errorf("base[5] = %v, want the 32x32 square", base[5])
	}
	// Index 14 = ratio 2, scale 32: h/w = 2, w = 16 * 32 / sqrt(2).
	w, h := 16*32/math.Sqrt(2), 16*32*math.Sqrt(2)
	want := [4]float64{-w / 2, -h / 2, w / 2, h / 2}
	for i := range 4 {
		if math.Abs(base[14][i]-want[i]) > 1e-9 {
			t.Errorf("base[14] = %v, want %v", base[14], want)
			break
		}
	}
	// Location (y 1, x 2) of a 3x4 map: anchors (1 * 4 + 2) * 15 + a, shifted by (32, 16).
	grid := det.GridAnchors[float64](gen, 0, 3, 4)
	i := ((1*4+2)*15 + 5) * 4
	if got := grid[i : i+4]; got[0] != 16 || got[1] != 0 || got[2] != 48 || got[3] != 32 {
		t.Errorf("anchor of location (1, 2), base 5 = %v, want [16 0 48 32]", got)
	}
}

// TestAnchorGeneratorRegistered decodes the generator from a config table.
func TestAnchorGeneratorRegistered(t *testing.T) {
	v, err := registry.Default.Decode(registry.NewSpec(det.PriorGenerators, "AnchorGenerator", map[string]any{
		"strides": []any{16}, "ratios": []any{0.5, 1.0, 2.0}, "scales": []any{2, 4, 8, 16, 32},
	}))
	if err != nil {
		t.Fatal(err)
	}
	gen := v.(*det.AnchorGenerator)
	if !gen.ScaleMajor || gen.CenterOffset != 0 || gen.NumBaseAnchors() != 15 {
		t.Errorf("decoded %+v", gen)
	}
	if _, err := registry.Default.Decode(registry.NewSpec(det.PriorGenerators, "AnchorGenerator", map[string]any{
		"strides": []any{16}, "ratios": []any{1.0},
	})); err == nil {
		t.Error("a generator without scales was accepted")
	}
}

// TestComponentsDescribed checks that every key of the package's components is
// documented, as print_config --describe shows them.
func TestComponentsDescribed(t *testing.T) {
	for _, id := range [][2]string{
		{det.PriorGenerators, "AnchorGenerator"}, {det.BBoxCoders, "DeltaXYWHBBoxCoder"},
		{det.BBoxAssigners, "MaxIoUAssigner"}, {det.BBoxSamplers, "RandomSampler"},
	} {
		d, err := registry.Default.Describe(id[0], id[1])
		if err != nil {
			t.Fatal(err)
		}
		for _, k := range d.Keys {
			if k.Doc == "" {
				t.Errorf("%s.%s: key %s has no doc tag", id[0], id[1], k.Name)
			}
		}
	}
}

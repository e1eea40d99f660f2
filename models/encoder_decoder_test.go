package models_test

import (
	"math"
	"os"
	"testing"

	"github.com/BurntSushi/toml"
	"github.com/gomlx/gomlx/pkg/core/dtypes"
	. "github.com/gomlx/gomlx/pkg/core/graph"
	"github.com/gomlx/gomlx/pkg/core/shapes"
	"github.com/gomlx/gomlx/pkg/core/tensors"
	"github.com/gomlx/gomlx/pkg/ml/context"

	_ "github.com/goselfsup/goselfsup/heads"
	"github.com/goselfsup/goselfsup/models"
	"github.com/goselfsup/goselfsup/models/nn"
	"github.com/goselfsup/goselfsup/registry"
)

// The shipped FCN R50-D8 model config builds from TOML, with mmseg's parameter count
// (49,480,042: the ResNet-50 backbone, the decode head and the auxiliary head, the same as
// benchmarks/seg_reference.py's model) and mmseg's names, and its heads read layer3 and layer4
// at output stride 8.
func TestFCNR50D8ConfigBuilds(t *testing.T) {
	var file struct {
		Model map[string]any `toml:"model"`
	}
	data, err := os.ReadFile("../configs/_base_/models/fcn_r50-d8.toml")
	if err != nil {
		t.Fatal(err)
	}
	if err := toml.Unmarshal(data, &file); err != nil {
		t.Fatal(err)
	}
	typ := file.Model["type"].(string)
	delete(file.Model, "type")
	ctx := context.New()
	m, err := registry.Build[*models.EncoderDecoder](registry.With(nil, nn.NewScope(ctx, 1)),
		registry.NewSpec("algorithms", typ, file.Model))
	if err != nil {
		t.Fatal(err)
	}
	if got := countParams(ctx); got != 49_480_042 {
		t.Errorf("FCN R50-D8: %d parameters, want 49,480,042", got)
	}
	names := map[string]bool{}
	for v := range ctx.IterVariables() {
		names[nn.TorchName(v)] = true
	}
	for _, n := range []string{"backbone.layer4.2.conv2.weight", "backbone.layer3.0.downsample.0.weight",
		"decode_head.convs.1.conv.weight", "decode_head.conv_cat.bn.running_var", "decode_head.conv_seg.bias",
		"auxiliary_head.convs.0.bn.weight", "auxiliary_head.conv_seg.weight"} {
		if !names[n] {
			t.Errorf("no variable %s", n)
		}
	}
	feats := context.MustExecOnceN(pureGo(t), ctx, func(ctx *context.Context, x *Node) []*Node {
		return m.Backbone.Forward(x, false)
	}, tensors.FromShape(shapesF32(1, 64, 64, 3)))
	for i, want := range [][]int{{1, 16, 16, 256}, {1, 8, 8, 512}, {1, 8, 8, 1024}, {1, 8, 8, 2048}} {
		if !feats[i].Shape().Equal(shapesF32(want...)) {
			t.Errorf("output %d: %s, want %v", i, feats[i].Shape(), want)
		}
	}
}

// Dropout2d zeroes whole channels of each image and scales the others by 1/(1-p), only in
// training.
func TestDropout2d(t *testing.T) {
	ctx := context.New()
	x := tensors.FromShape(shapes.Make(dtypes.Float64, 8, 3, 4, 64))
	ones := tensors.MustCopyFlatData[float64](x)
	for i := range ones {
		ones[i] = 1
	}
	x = tensors.FromFlatDataAndDimensions(ones, 8, 3, 4, 64)
	outs := context.MustExecOnceN(pureGo(t), ctx, func(ctx *context.Context, x *Node) []*Node {
		return []*Node{nn.Dropout2d(ctx, x, 0.25, true), nn.Dropout2d(ctx, x, 0.25, false)}
	}, x)
	y := tensors.MustCopyFlatData[float64](outs[0])
	zeros := 0
	for b := range 8 {
		for c := range 64 {
			first := y[((b*3)*4)*64+c]
			if first != 0 && math.Abs(first-1/0.75) > 1e-12 {
				t.Fatalf("kept value %g, want %g", first, 1/0.75)
			}
			if first == 0 {
				zeros++
			}
			for p := range 12 {
				if y[(b*12+p)*64+c] != first {
					t.Fatalf("image %d channel %d is not dropped as a whole", b, c)
				}
			}
		}
	}
	if zeros < 64 || zeros > 192 { // 512 channels, p = 0.25: 128 expected
		t.Errorf("%d of 512 channels dropped, want about 128", zeros)
	}
	for i, v := range tensors.MustCopyFlatData[float64](outs[1]) {
		if v != 1 {
			t.Fatalf("eval mode changed value %d to %g", i, v)
		}
	}
}

// ZeroPadding zeroes the pixels outside each image's size (img_shape), as mmseg pads after
// normalising.
func TestZeroPadding(t *testing.T) {
	x := make([]float64, 2*3*4*2)
	for i := range x {
		x[i] = float64(i + 1)
	}
	out := context.MustExecOnce(pureGo(t), context.New(), func(ctx *context.Context, x, s *Node) *Node {
		return models.ZeroPadding(x, s)
	}, tensors.FromFlatDataAndDimensions(x, 2, 3, 4, 2), tensors.FromFlatDataAndDimensions([]int32{2, 3, 3, 4}, 2, 2))
	got := tensors.MustCopyFlatData[float64](out)
	sizes := [][2]int{{2, 3}, {3, 4}}
	for b := range 2 {
		for y := range 3 {
			for xx := range 4 {
				for c := range 2 {
					i := ((b*3+y)*4+xx)*2 + c
					want := x[i]
					if y >= sizes[b][0] || xx >= sizes[b][1] {
						want = 0
					}
					if got[i] != want {
						t.Fatalf("image %d pixel (%d, %d) channel %d: %g, want %g", b, y, xx, c, got[i], want)
					}
				}
			}
		}
	}
}

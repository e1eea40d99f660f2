package models

import (
	"errors"
	"fmt"
	"slices"

	. "github.com/gomlx/gomlx/pkg/core/graph"

	"github.com/goselfsup/goselfsup/registry"
)

func init() {
	registry.Add(registry.Poolings, "AvgPool2d", "global average pooling of the last backbone output",
		func() *AvgPool2dConfig { return &AvgPool2dConfig{} })
	registry.Add(registry.Poolings, "MultiPooling", "pooling of several backbone outputs to about 9,000 dimensions each",
		func() *MultiPoolingConfig {
			return &MultiPoolingConfig{PoolType: "specified", InIndices: []int{0, 1, 2, 3, 4}, Backbone: "resnet50"}
		})
}

// FeaturePooling is a component of the "poolings" namespace, a benchmark's pool_cfg: how
// extraction pools the backbone's outputs into feature vectors.
type FeaturePooling interface {
	// FeatureNames are the features it gives: "backbone" (the last output, globally
	// pooled), or feat<i+1> for each output i of a MultiPooling.
	FeatureNames() []string
	// Multi is the MultiPooling that computes feat1..feat5, nil for global pooling.
	Multi() *MultiPooling
}

// AvgPool2dConfig pools the last backbone output globally (mmselfsup's Extractor AvgPool2d).
type AvgPool2dConfig struct{}

// MultiPoolingConfig is mmselfsup's MultiPooling: each backbone output of in_indices pooled
// to about 9,000 dimensions, by the table of the backbone ("specified") or adaptively.
type MultiPoolingConfig struct {
	PoolType  string `toml:"pool_type" doc:"specified (the backbone's AvgPool2d table) or adaptive (AdaptiveAvgPool2d)"`
	InIndices []int  `toml:"in_indices" doc:"the backbone outputs to pool: 0 the stem, 1..4 the stages"`
	Backbone  string `toml:"backbone" doc:"the table's backbone: resnet18 or resnet50"`
}

func (c *MultiPoolingConfig) Validate() error {
	var errs []error
	if c.PoolType != "specified" && c.PoolType != "adaptive" {
		errs = append(errs, registry.FieldErrorf("pool_type", `must be "specified" or "adaptive", got %q`, c.PoolType))
	}
	for _, i := range c.InIndices {
		if i < 0 || i > 4 {
			errs = append(errs, registry.FieldErrorf("in_indices", "%d is not a ResNet output (0 = stem, 1..4 = stages)", i))
		}
	}
	if c.Backbone != "resnet18" && c.Backbone != "resnet50" {
		errs = append(errs, registry.FieldErrorf("backbone", `must be "resnet18" or "resnet50", got %q`, c.Backbone))
	}
	return errors.Join(errs...)
}

func (*AvgPool2dConfig) Build(*registry.Env) (any, error) { return globalPooling{}, nil }

type globalPooling struct{}

func (globalPooling) FeatureNames() []string { return []string{"backbone"} }
func (globalPooling) Multi() *MultiPooling   { return nil }

func (c *MultiPoolingConfig) Build(*registry.Env) (any, error) {
	return NewMultiPooling(c.PoolType, c.Backbone, c.InIndices)
}

// FeatureNames are feat<i+1> for each output i it pools.
func (m *MultiPooling) FeatureNames() []string {
	out := make([]string, len(m.InIndices))
	for j, i := range m.InIndices {
		out[j] = fmt.Sprintf("feat%d", i+1)
	}
	return out
}

// Multi is m itself.
func (m *MultiPooling) Multi() *MultiPooling { return m }

// PoolParams is one AvgPool2d of MultiPooling's "specified" table.
type PoolParams struct{ Kernel, Stride, Padding int }

// MultiPoolingTable is mmselfsup's MultiPooling table for one backbone: for each output
// (0 = stem, 1..4 = stages) at a 224x224 input, its channels, the AvgPool2d of the
// "specified" pooling, the output side of the "adaptive" pooling, and the flattened size.
type MultiPoolingTable struct {
	Channels [5]int
	Params   [5]PoolParams
	Sizes    [5]int
	Dims     [5]int
}

// MultiPoolingTables are the tables by backbone name. resnet50 is mmselfsup's
// (POOL_PARAMS, POOL_SIZES, POOL_DIMS, FEAT_CHANNELS). resnet18 is goselfsup's analogue:
// the same output sides for the stem (12x12 of 64 channels) and, for the narrower stages,
// windows chosen so that every output has the ResNet-50 dimensions 9216, 9216, 8192, 9216,
// 8192 (stage maps 56, 28, 14, 7 pixels wide pooled to 12, 8, 6, 4).
var MultiPoolingTables = map[string]MultiPoolingTable{
	"resnet50": {
		Channels: [5]int{64, 256, 512, 1024, 2048},
		Params:   [5]PoolParams{{10, 10, 4}, {16, 8, 0}, {13, 5, 0}, {8, 3, 0}, {6, 1, 0}},
		Sizes:    [5]int{12, 6, 4, 3, 2},
		Dims:     [5]int{9216, 9216, 8192, 9216, 8192},
	},
	"resnet18": {
		Channels: [5]int{64, 64, 128, 256, 512},
		Params:   [5]PoolParams{{10, 10, 4}, {12, 4, 0}, {7, 3, 0}, {4, 2, 0}, {4, 1, 0}},
		Sizes:    [5]int{12, 12, 8, 6, 4},
		Dims:     [5]int{9216, 9216, 8192, 9216, 8192},
	},
}

// MultiPooling is mmselfsup's MultiPooling: each backbone output of InIndices pooled to
// about 9,000 values, with the AvgPool2d of the table ("specified": PyTorch's AvgPool2d,
// padding counted in the average) or an adaptive average pooling to the table's side
// ("adaptive": PyTorch's AdaptiveAvgPool2d, for inputs other than 224x224).
type MultiPooling struct {
	Adaptive  bool
	InIndices []int
	Table     MultiPoolingTable
}

// NewMultiPooling returns the pooling of a backbone's table; poolType is "specified" or
// "adaptive".
func NewMultiPooling(poolType, backbone string, inIndices []int) (*MultiPooling, error) {
	t, ok := MultiPoolingTables[backbone]
	if !ok {
		names := make([]string, 0, len(MultiPoolingTables))
		for n := range MultiPoolingTables {
			names = append(names, n)
		}
		slices.Sort(names)
		return nil, fmt.Errorf("MultiPooling has no table for backbone %q (have %v)", backbone, names)
	}
	if poolType != "specified" && poolType != "adaptive" {
		return nil, fmt.Errorf(`pool_type must be "specified" or "adaptive", got %q`, poolType)
	}
	for _, i := range inIndices {
		if i < 0 || i >= len(t.Params) {
			return nil, fmt.Errorf("in_indices: %d is not a ResNet output (0 = stem, 1..4 = stages)", i)
		}
	}
	return &MultiPooling{Adaptive: poolType == "adaptive", InIndices: inIndices, Table: t}, nil
}

// Pool pools the backbone output number index (an NHWC map) and returns it still NHWC.
func (p *MultiPooling) Pool(x *Node, index int) *Node {
	if p.Adaptive {
		s := p.Table.Sizes[index]
		return AdaptiveAvgPool2d(x, s, s)
	}
	q := p.Table.Params[index]
	return AvgPool2d(x, q.Kernel, q.Stride, q.Padding)
}

// Forward pools outs, the backbone outputs of InIndices in that order, and flattens each in
// PyTorch's channel-major (NCHW) order, as mmselfsup's extractor does: [N, C*H*W] each.
func (p *MultiPooling) Forward(outs []*Node) []*Node {
	if len(outs) != len(p.InIndices) {
		panic(fmt.Sprintf("MultiPooling: %d backbone outputs for in_indices %v", len(outs), p.InIndices))
	}
	res := make([]*Node, len(outs))
	for k, x := range outs {
		res[k] = FlattenNCHW(p.Pool(x, p.InIndices[k]))
	}
	return res
}

// FlattenNCHW flattens NHWC maps in PyTorch's NCHW order: [N, H, W, C] -> [N, C*H*W].
func FlattenNCHW(x *Node) *Node {
	return Reshape(TransposeAllDims(x, 0, 3, 1, 2), x.Shape().Dim(0), -1)
}

// AvgPool2d is PyTorch's AvgPool2d(kernel, stride, padding) on NHWC maps with its defaults
// (count_include_pad = True, ceil_mode = False): each window's sum, zero padding included,
// divided by kernel².
func AvgPool2d(x *Node, kernel, stride, padding int) *Node {
	pad := [2]int{padding, padding}
	sum := SumPool(x).Window(kernel).Strides(stride).PaddingPerDim([][2]int{pad, pad}).Done()
	return DivScalar(sum, float64(kernel*kernel))
}

// AdaptiveAvgPool2d is PyTorch's AdaptiveAvgPool2d((outH, outW)) on NHWC maps: output cell
// (i, j) averages rows floor(i*H/outH) to ceil((i+1)*H/outH) - 1, and likewise columns.
func AdaptiveAvgPool2d(x *Node, outH, outW int) *Node {
	h, w := x.Shape().Dim(1), x.Shape().Dim(2)
	rows := make([]*Node, outH)
	for i := range outH {
		r0, r1 := i*h/outH, ((i+1)*h+outH-1)/outH
		cols := make([]*Node, outW)
		for j := range outW {
			c0, c1 := j*w/outW, ((j+1)*w+outW-1)/outW
			cell := Slice(x, AxisRange(), AxisRange(r0, r1), AxisRange(c0, c1), AxisRange())
			cols[j] = ReduceAndKeep(cell, ReduceMean, 1, 2)
		}
		rows[i] = Concatenate(cols, 2)
	}
	return Concatenate(rows, 1)
}

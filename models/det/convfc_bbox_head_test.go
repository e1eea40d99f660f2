package det_test

import (
	"math"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/gomlx/gomlx/pkg/core/dtypes"
	. "github.com/gomlx/gomlx/pkg/core/graph"
	"github.com/gomlx/gomlx/pkg/ml/context"

	"github.com/goselfsup/goselfsup/models/det"
	"github.com/goselfsup/goselfsup/models/nn"
	"github.com/goselfsup/goselfsup/registry"
)

// convFCHead is a Shared4Conv1FCBBoxHead (or, with convs 0 and fcs 2, Shared2FCBBoxHead)
// narrower than the benchmark's.
func convFCHead(typ string, in, convOut, fcOut, classes int, norm bool) registry.Spec {
	cfg := map[string]any{"in_channels": in, "conv_out_channels": convOut, "fc_out_channels": fcOut, "roi_feat_size": 7,
		"num_classes": classes, "reg_class_agnostic": false,
		"bbox_coder": map[string]any{"type": "DeltaXYWHBBoxCoder", "target_stds": []float64{0.1, 0.1, 0.2, 0.2}}}
	if norm {
		cfg["norm_cfg"] = map[string]any{"type": "BN", "requires_grad": true}
	}
	return registry.NewSpec(registry.Heads, typ, cfg)
}

// TestConvFCBBoxHeadMatchesTorch compares the forward (BN in train mode) of
// Shared4Conv1FCBBoxHead with norm_cfg and of Shared2FCBBoxHead, and the gradients of <cls,
// r1> + <reg, r2> w.r.t. the RoI features and every parameter, with a PyTorch transcription
// of mmdet's ConvFCBBoxHead.forward (flatten(1) of NCHW features), float32 to 1e-5 (the
// parameters' gradients relative to each tensor's largest, compareScaled) and float64 to 1e-9.
// The fc weights are [out, C*7*7] in PyTorch's order, so a wrong flatten order fails it.
func TestConvFCBBoxHeadMatchesTorch(t *testing.T) {
	python := torchPython(t)
	const r, c, convOut, fcOut, classes = 6, 5, 6, 16, 3
	for _, tc := range []struct {
		typ        string
		convs, fcs int
		norm       bool
	}{{"Shared4Conv1FCBBoxHead", 4, 1, true}, {"Shared2FCBBoxHead", 0, 2, false}} {
		for _, dt := range []dtypes.DType{dtypes.Float32, dtypes.Float64} {
			t.Run(tc.typ+"-"+dt.String(), func(t *testing.T) {
				ctx := context.New()
				scope := nn.NewScope(ctx, 9).WithDType(dt)
				head, err := registry.Build[det.BoxHead](registry.With(nil, scope), convFCHead(tc.typ, c, convOut, fcOut, classes, tc.norm))
				if err != nil {
					t.Fatal(err)
				}
				params, vars := trainableParams(t, ctx)
				// fc_cls and fc_reg start at N(0, 0.01) and N(0, 0.001): scale them up so that
				// their gradients and outputs are not all near zero.
				for _, v := range vars {
					if n := nn.TorchName(v); strings.HasPrefix(n, "fc_") && v.Name() == "weight" {
						p := params[n]
						for i := range p.Data {
							p.Data[i] *= 30
						}
						v.SetValue(tensorFlat(dt, p.Data, p.Shape...))
					}
				}
				rng := rand.New(rand.NewPCG(41, 42))
				x := randomFlat(rng, r*7*7*c, 1, dt)
				cotCls := randomFlat(rng, r*(classes+1), 1, dt)
				cotReg := randomFlat(rng, r*4*classes, 1, dt)
				res := context.MustExecOnceN(pureGo(t), ctx, func(ctx *context.Context, in []*Node) []*Node {
					cls, reg := head.Forward(in[0], true)
					loss := Add(ReduceAllSum(Mul(cls, in[1])), ReduceAllSum(Mul(reg, in[2])))
					wrt := []*Node{in[0]}
					for _, v := range vars {
						wrt = append(wrt, v.ValueGraph(loss.Graph()))
					}
					return append([]*Node{cls, reg}, Gradient(loss, wrt...)...)
				}, tensorFlat(dt, x, r, 7, 7, c), tensorFlat(dt, cotCls, r, classes+1), tensorFlat(dt, cotReg, r, 4*classes))
				var want struct {
					Cls        []float64            `json:"cls"`
					Reg        []float64            `json:"reg"`
					XGrad      []float64            `json:"x_grad"`
					ParamGrads map[string][]float64 `json:"param_grads"`
				}
				runFPNReference(t, python, "convfc", map[string]any{"dtype": strings.ToLower(dt.String()), "x": x, "x_shape": []int{r, 7, 7, c},
					"num_shared_convs": tc.convs, "num_shared_fcs": tc.fcs, "norm": tc.norm, "cot_cls": cotCls, "cot_reg": cotReg, "params": params}, &want)
				tol := tolerance(dt)
				compareFlat(t, "cls", flat64(t, res[0]), want.Cls, tol)
				compareFlat(t, "reg", flat64(t, res[1]), want.Reg, tol)
				compareFlat(t, "x grad", flat64(t, res[2]), want.XGrad, tol)
				for j, v := range vars {
					compareScaled(t, "grad "+nn.TorchName(v), flat64(t, res[3+j]), want.ParamGrads[nn.TorchName(v)], tol)
				}
				if len(want.ParamGrads) != len(vars) {
					t.Errorf("%d parameters, the reference has %d", len(vars), len(want.ParamGrads))
				}
				spread := 0.0
				for _, v := range want.Cls {
					spread = math.Max(spread, math.Abs(v))
				}
				t.Logf("%d parameters; max |cls| %.3g", len(vars), spread)
			})
		}
	}
}

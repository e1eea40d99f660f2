package nn

import (
	"github.com/gomlx/gomlx/pkg/core/dtypes"
	. "github.com/gomlx/gomlx/pkg/core/graph"
	"github.com/gomlx/gomlx/pkg/ml/context"
)

// Mixed precision, as torch.autocast: inside an autocast region, Conv2d and Linear convert
// their float32 input and weight to the region's dtype (bfloat16), convolve or multiply in
// it, and convert the result back to float32, to which the bias is added. Everything else
// (batch norm, the ReLU, pooling, normalisation, softmax, the loss, the memory bank) computes
// in float32, and the variables (the master weights, the optimizer's state, batch-norm
// statistics) stay float32: the gradients reach them through the conversions, in float32.
//
// A region is a graph (Context.SetGraphParam), not a model: the runner makes its train step
// one when the optim_wrapper asks for autocast (AmpOptimWrapper), and the feature
// extraction of evaluation, in other graphs, stays float32, as mmengine's AmpOptimWrapper
// autocasts the train step only.

// autocastKey is the graph parameter holding the dtype of an autocast region.
const autocastKey = "goselfsup/autocast"

// SetAutocast makes g an autocast region of dtype (bfloat16) for the layers whose variables
// live in ctx or its sub-scopes.
func SetAutocast(ctx *context.Context, g *Graph, dtype dtypes.DType) {
	ctx.SetGraphParam(g, autocastKey, dtype)
}

// AutocastDType returns the dtype of g's autocast region, or dtypes.InvalidDType outside
// one.
func AutocastDType(ctx *context.Context, g *Graph) dtypes.DType {
	if ctx == nil {
		return dtypes.InvalidDType
	}
	if v, ok := ctx.GetGraphParam(g, autocastKey); ok {
		if d, ok := v.(dtypes.DType); ok {
			return d
		}
	}
	return dtypes.InvalidDType
}

// autocastTo returns the dtype that a layer of ctx computes x in: the region's dtype for a
// float32 x in an autocast region, else x's own (float64 models never autocast).
func autocastTo(ctx *context.Context, x *Node) dtypes.DType {
	if x.DType() == dtypes.Float32 {
		if d := AutocastDType(ctx, x.Graph()); d != dtypes.InvalidDType {
			return d
		}
	}
	return x.DType()
}

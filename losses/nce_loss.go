package losses

import (
	"fmt"

	. "github.com/gomlx/gomlx/pkg/core/graph"
	"github.com/gomlx/gomlx/pkg/ml/context"

	"github.com/goselfsup/goselfsup/models/nn"
	"github.com/goselfsup/goselfsup/registry"
)

// NCELossConfig configures NCE.
type NCELossConfig struct {
	Eps float64 `toml:"eps" doc:"added to each denominator, as lemniscate's NCECriterion"`
}

func init() {
	registry.Add(registry.Losses, "NCELoss", "the NPID paper's noise-contrastive estimation, Z estimated on the first batch",
		func() *NCELossConfig { return &NCELossConfig{Eps: 1e-7} })
}

func (c *NCELossConfig) Validate() error {
	if c.Eps < 0 {
		return registry.FieldErrorf("eps", "must not be negative, got %g", c.Eps)
	}
	return nil
}

// NCE is the noise-contrastive estimation loss of the NPID paper (lemniscate.pytorch's
// NCEAverage and NCECriterion): with P = exp(logits) / Z, K = the number of negatives and
// Pn = 1/N the uniform noise over the N training images,
//
//	loss = -(Σ log(P₀ / (P₀ + K·Pn + eps)) + Σₖ log(K·Pn / (Pₖ + K·Pn + eps))) / B
//
// Z is estimated once, on the first batch (of all devices), as mean(exp(logits)) · N, then kept (it is a
// variable, "Z", saved with the checkpoints; negative means not estimated yet).
type NCE struct {
	Z        *context.Variable
	DataSize int
	Eps      float64
}

func (c *NCELossConfig) Build(env *registry.Env) (any, error) {
	s, err := registry.Need[*nn.Scope](env)
	if err != nil {
		return nil, err
	}
	n, err := registry.Need[nn.DataSize](env)
	if err != nil {
		return nil, fmt.Errorf("NCELoss needs the number of training images, which NPID provides: %w", err)
	}
	z := s.Context().Checked(false).VariableWithValue("Z", s.Tensor([]float64{-1}))
	z.SetTrainable(false)
	return &NCE{Z: z, DataSize: int(n), Eps: c.Eps}, nil
}

// Loss takes the logits [B, 1+K] (already divided by the temperature) with the positive in
// column 0; labels must be zero.
func (l *NCE) Loss(_ *context.Context, logits, _ *Node) *Node {
	g := logits.Graph()
	batch, k := logits.Shape().Dim(0), logits.Shape().Dim(1)-1
	out := Exp(logits)
	zOld := l.Z.ValueGraph(g)
	estimate := MulScalar(nn.MeanAcross(ReduceAllMean(StopGradient(out))), float64(l.DataSize))
	z := StopGradient(Where(LessThan(zOld, ScalarZero(g, zOld.DType())), estimate, zOld))
	l.Z.SetValueGraph(z)
	p := Div(out, z)
	kpn := float64(k) / float64(l.DataSize)
	pos := Slice(p, AxisRange(), AxisRange(0, 1))
	neg := Slice(p, AxisRange(), AxisRange(1))
	lnPos := Log(Div(pos, AddScalar(pos, kpn+l.Eps)))
	lnNeg := Log(Div(Scalar(g, p.DType(), kpn), AddScalar(neg, kpn+l.Eps)))
	return DivScalar(Neg(Add(ReduceAllSum(lnPos), ReduceAllSum(lnNeg))), float64(batch))
}

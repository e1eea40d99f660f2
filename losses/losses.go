package losses

import (
	"fmt"

	. "github.com/gomlx/gomlx/pkg/core/graph"
	"github.com/gomlx/gomlx/pkg/ml/context"

	"github.com/goselfsup/goselfsup/models/nn"
	"github.com/goselfsup/goselfsup/registry"
)

// CrossEntropy is softmax cross-entropy with integer labels, as PyTorch's CrossEntropyLoss:
// the mean over the batch of -log softmax(logits)[label], or the weighted mean
// Σ w[y]·l / Σ w[y] with class weights.
type CrossEntropy struct {
	Reduction   string
	LossWeight  float64
	ClassWeight []float64
}

func (c *CrossEntropyLossConfig) Build(*registry.Env) (any, error) {
	return &CrossEntropy{Reduction: c.Reduction, LossWeight: c.LossWeight, ClassWeight: c.ClassWeight}, nil
}

// Loss returns the loss of logits [B, C] against labels [B].
func (l *CrossEntropy) Loss(_ *context.Context, logits, labels *Node) *Node {
	numClasses := logits.Shape().Dim(1)
	if l.ClassWeight != nil && len(l.ClassWeight) != numClasses {
		panic(fmt.Sprintf("CrossEntropyLoss: %d class weights for %d classes", len(l.ClassWeight), numClasses))
	}
	onehot := OneHot(labels, numClasses, logits.DType())
	nll := Neg(ReduceSum(Mul(LogSoftmax(logits), onehot), -1)) // [B]
	weights := OnesLike(nll)
	if l.ClassWeight != nil {
		w := ConvertDType(Const(logits.Graph(), l.ClassWeight), logits.DType())
		weights = ReduceSum(Mul(onehot, ExpandLeftToRank(w, 2)), -1)
		nll = Mul(nll, weights)
	}
	var loss *Node
	switch l.Reduction {
	case "sum":
		loss = ReduceAllSum(nll)
	case "none":
		loss = nll
	default:
		loss = Div(ReduceAllSum(nll), ReduceAllSum(weights))
	}
	return MulScalar(loss, l.LossWeight)
}

// NCE is the noise-contrastive estimation loss of the NPID paper (lemniscate.pytorch's
// NCEAverage and NCECriterion): with P = exp(logits) / Z, K = the number of negatives and
// Pn = 1/N the uniform noise over the N training images,
//
//	loss = -(Σ log(P₀ / (P₀ + K·Pn + eps)) + Σₖ log(K·Pn / (Pₖ + K·Pn + eps))) / B
//
// Z is estimated once, on the first batch, as mean(exp(logits)) · N, then kept (it is a
// variable, "Z", saved with the checkpoints; negative means not estimated yet).
type NCE struct {
	Z        *context.Variable
	DataSize int
	Eps      float64
}

// NCELossConfig configures NCE.
type NCELossConfig struct {
	Eps float64 `toml:"eps"`
}

func (c *NCELossConfig) Validate() error {
	if c.Eps < 0 {
		return registry.FieldErrorf("eps", "must not be negative, got %g", c.Eps)
	}
	return nil
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
	estimate := MulScalar(ReduceAllMean(StopGradient(out)), float64(l.DataSize))
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

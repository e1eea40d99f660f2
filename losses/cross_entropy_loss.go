// Package losses holds the losses: softmax cross-entropy (NPID's InfoNCE over the
// positive and the sampled negatives, and classification) and the NCE loss of the NPID paper.
// Each loss has one file: its config, the config's Validate and Build, the type it builds
// and its registration.
package losses

import (
	"errors"
	"fmt"
	"math"

	"github.com/gomlx/gomlx/pkg/core/dtypes"

	. "github.com/gomlx/gomlx/pkg/core/graph"
	"github.com/gomlx/gomlx/pkg/ml/context"

	"github.com/goselfsup/goselfsup/registry"
)

// CrossEntropyLossConfig is mmcls's CrossEntropyLoss (softmax cross-entropy).
type CrossEntropyLossConfig struct {
	UseSigmoid  bool      `toml:"use_sigmoid" doc:"binary cross-entropy of sigmoids (not supported: softmax only)"`
	UseSoft     bool      `toml:"use_soft" doc:"soft labels (not supported: hard labels only)"`
	Reduction   string    `toml:"reduction" doc:"how the per-sample losses are combined: mean, sum or none"`
	LossWeight  float64   `toml:"loss_weight" doc:"the loss is multiplied by it"`
	ClassWeight []float64 `toml:"class_weight" doc:"a weight per class, for a weighted mean; none: all 1"`
	// AvgNonIgnore is mmseg's key for per-pixel losses (SegLoss): the mean divides by the
	// pixels that are not ignored instead of by all of them (mmseg's default, false).
	AvgNonIgnore bool `toml:"avg_non_ignore" doc:"segmentation: the mean is over the pixels that are not ignored, instead of over all pixels (mmseg's key, default false)"`
}

func init() {
	registry.Add(registry.Losses, "CrossEntropyLoss", "softmax cross-entropy",
		func() *CrossEntropyLossConfig { return &CrossEntropyLossConfig{Reduction: "mean", LossWeight: 1} })
}

func (c *CrossEntropyLossConfig) Validate() error {
	var errs []error
	if c.UseSigmoid {
		errs = append(errs, registry.FieldErrorf("use_sigmoid", "only softmax cross-entropy is supported"))
	}
	if c.UseSoft {
		errs = append(errs, registry.FieldErrorf("use_soft", "only hard labels are supported"))
	}
	switch c.Reduction {
	case "mean", "sum", "none":
	default:
		errs = append(errs, registry.FieldErrorf("reduction", `must be "mean", "sum" or "none", got %q`, c.Reduction))
	}
	if c.LossWeight <= 0 {
		errs = append(errs, registry.FieldErrorf("loss_weight", "must be positive, got %g", c.LossWeight))
	}
	return errors.Join(errs...)
}

// CrossEntropy is softmax cross-entropy with integer labels, as PyTorch's CrossEntropyLoss:
// the mean over the batch of -log softmax(logits)[label], or the weighted mean
// Σ w[y]·l / Σ w[y] with class weights.
type CrossEntropy struct {
	Reduction   string
	LossWeight  float64
	ClassWeight []float64
	// AvgNonIgnore: SegLoss's mean divides by the non-ignored pixels, not all of them.
	AvgNonIgnore bool
}

func (c *CrossEntropyLossConfig) Build(*registry.Env) (any, error) {
	return &CrossEntropy{Reduction: c.Reduction, LossWeight: c.LossWeight, ClassWeight: c.ClassWeight,
		AvgNonIgnore: c.AvgNonIgnore}, nil
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

// SegLoss returns mmseg's cross-entropy of per-pixel logits [B, H, W, C] against labels
// [B, H, W] (int32), in which ignoreIndex marks the pixels without a label:
//
//	l_p = w[y_p] · -log softmax(logits_p)[y_p] (0 where y_p = ignoreIndex)
//	mean = Σ l_p / (B·H·W)      (avg_non_ignore = false, mmseg's default)
//	mean = Σ l_p / (N_valid + ε)  (avg_non_ignore = true; ε is float32's machine epsilon)
//
// so, by default, ignored pixels count in the denominator, unlike PyTorch's
// F.cross_entropy(ignore_index=...). Class weights scale each pixel's loss without
// renormalising, as mmseg's. The result is multiplied by loss_weight.
func (l *CrossEntropy) SegLoss(_ *context.Context, logits, labels *Node, ignoreIndex int) *Node {
	numClasses := logits.Shape().Dim(-1)
	if l.ClassWeight != nil && len(l.ClassWeight) != numClasses {
		panic(fmt.Sprintf("CrossEntropyLoss: %d class weights for %d classes", len(l.ClassWeight), numClasses))
	}
	if labels.Rank() != logits.Rank()-1 {
		panic(fmt.Sprintf("CrossEntropyLoss: labels %s do not match logits %s", labels.Shape(), logits.Shape()))
	}
	g, dtype := logits.Graph(), logits.DType()
	labels = ConvertDType(labels, dtypes.Int32)
	valid := NotEqual(labels, Scalar(g, dtypes.Int32, ignoreIndex))
	safe := Where(valid, labels, ZerosLike(labels))
	onehot := OneHot(safe, numClasses, dtype)
	nll := Neg(ReduceSum(Mul(LogSoftmax(logits), onehot), -1))
	if l.ClassWeight != nil {
		w := ConvertDType(Const(g, l.ClassWeight), dtype)
		nll = Mul(nll, ReduceSum(Mul(onehot, ExpandLeftToRank(w, onehot.Rank())), -1))
	}
	validF := ConvertDType(valid, dtype)
	nll = Mul(nll, validF)
	var loss *Node
	switch l.Reduction {
	case "sum":
		loss = ReduceAllSum(nll)
	case "none":
		loss = nll
	default:
		if l.AvgNonIgnore {
			eps := float64(math.Nextafter32(1, 2) - 1)
			loss = Div(ReduceAllSum(nll), AddScalar(ReduceAllSum(validF), eps))
		} else {
			loss = DivScalar(ReduceAllSum(nll), float64(nll.Shape().Size()))
		}
	}
	return MulScalar(loss, l.LossWeight)
}

package cli

import (
	"fmt"
	"io"

	"github.com/goselfsup/goselfsup/evaluators"
	"github.com/goselfsup/goselfsup/registry"
)

const svmUsage = `usage: goselfsup svm BENCHMARK_CONFIG [CHECKPOINT] [flags]

The VOC07 SVM benchmark (mmselfsup's svm_voc07): features scaled to f / (||f|| + 1e-5),
one linear SVM per class (liblinear's dual coordinate descent: squared hinge, L2, weight
2 on positives), the cost chosen per class from val_evaluator.costs by 3-fold
cross-validated AP on the training set, then the test AP per class (difficult objects
left out) and the mAP; with val_evaluator.low_shot, the low-shot runs (k positives and k
negatives per class, several draws). On single-label data (CIFAR-10, Fashion-MNIST,
ImageNet lists) the classes are one-vs-rest and the accuracy of the highest-scoring SVM
is reported too. Prints the results and writes metrics.json.

`

// SVM is the entry point of tools/svm.
func SVM(args []string, stdout, stderr io.Writer) int {
	c := newEvalCommand("svm", svmUsage, stderr)
	c.withFeatureFlags("", "to evaluate (default: val_evaluator.features)")
	lowShot := c.fs.Bool("low-shot", true, "run val_evaluator.low_shot when the config has it")
	if rc, ok := c.parse(args, stdout, stderr); !ok {
		return rc
	}
	if err := runSVM(c, *lowShot, stdout, stderr); err != nil {
		report(stderr, err)
		return exitFailed
	}
	return exitOK
}

func runSVM(c *evalCommand, lowShot bool, stdout, stderr io.Writer) error {
	spec := c.bench.ValEvaluator
	if spec.Type != "VOC07SVM" {
		return fmt.Errorf("%s: val_evaluator is %s, not VOC07SVM", c.benchPath, spec.Type)
	}
	if names := c.featureNames(); len(names) > 0 {
		list := make([]any, len(names))
		for i, n := range names {
			list[i] = n
		}
		spec = spec.With("features", list)
	}
	if !lowShot {
		spec = spec.Without("low_shot")
	}
	ev, err := registry.Build[evaluators.FeatureEvaluator](&registry.Env{Registry: c.reg}, spec)
	if err != nil {
		return err
	}
	return runFeatureEvaluator(c, ev, "cpu", stdout, stderr)
}

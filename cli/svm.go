package cli

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"

	"github.com/goselfsup/goselfsup/engine"
	"github.com/goselfsup/goselfsup/evaluators"
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
	ec, err := c.reg.Decode(c.bench.ValEvaluator)
	if err != nil {
		return err
	}
	sc, ok := ec.(*evaluators.VOC07SVMConfig)
	if !ok {
		return fmt.Errorf("%s: val_evaluator is %s, not VOC07SVM", c.benchPath, c.bench.ValEvaluator.Type)
	}
	names := c.featureNames()
	if len(names) == 0 {
		names = sc.Features
	}
	var e *engine.Evaluation
	if *c.featuresDir == "" {
		if e, err = c.open(stderr); err != nil {
			return err
		}
		defer e.Close()
	}
	ctx, stop := interruptible()
	defer stop()
	sets, err := c.featureSets(ctx, e, names)
	if err != nil {
		return err
	}
	opts := evaluators.VOC07Options{Costs: sc.Costs, CVFolds: sc.CVFolds, PositiveWeight: sc.PositiveWeight,
		Tol: sc.Tol, MaxIter: sc.MaxIter, Seed: uint64(*c.seed)}
	trainT, singleTrain := targetsOf(sets["train"])
	testT, single := targetsOf(sets["val"])
	single = single && singleTrain
	metrics := map[string]any{"checkpoint": c.checkpoint, "costs": sc.Costs}
	for _, name := range names {
		train := toMatrix(sets["train"].Features[name])
		test := toMatrix(sets["val"].Features[name])
		evaluators.NormalizeFeatures(train)
		evaluators.NormalizeFeatures(test)
		fmt.Fprintf(stderr, "%s: SVMs for %d classes on %d training images of %d dimensions...\n", name, len(trainT[0]), train.Rows, train.Cols)
		res, err := evaluators.VOC07SVM(train, trainT, test, testT, opts)
		if err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
		fmt.Fprintf(stdout, "%s: mAP %.2f", name, 100*res.MAP)
		metrics[name+"_svm_map"] = 100 * res.MAP
		aps := make([]float64, len(res.AP))
		for i, ap := range res.AP {
			aps[i] = 100 * ap
		}
		metrics[name+"_svm_ap"] = aps
		metrics[name+"_svm_cost"] = res.Cost
		if single {
			acc := evaluators.OneVsRestAccuracy(res.Decisions, sets["val"].Labels)
			fmt.Fprintf(stdout, ", one-vs-rest accuracy %.2f", acc)
			metrics[name+"_svm_accuracy"] = acc
		}
		fmt.Fprintln(stdout)
		tw := tabwriter.NewWriter(stdout, 0, 0, 2, ' ', tabwriter.AlignRight)
		fmt.Fprintln(tw, "class\tcost\tAP\t")
		for k := range res.AP {
			fmt.Fprintf(tw, "%d\t%g\t%.2f\t\n", k, res.Cost[k], 100*res.AP[k])
		}
		tw.Flush()
		if sc.LowShot != nil && lowShot {
			ls, err := evaluators.LowShotSVM(train, trainT, test, testT, opts, sc.LowShot.Shots, sc.LowShot.Samples)
			if err != nil {
				return fmt.Errorf("%s: low-shot: %w", name, err)
			}
			tw := tabwriter.NewWriter(stdout, 0, 0, 2, ' ', tabwriter.AlignRight)
			fmt.Fprintf(tw, "%s low-shot\tmean mAP\tmin\tmax\tstd\t\n", name)
			var means []string
			for _, r := range ls {
				fmt.Fprintf(tw, "k=%d\t%.2f\t%.2f\t%.2f\t%.2f\t\n", r.Shots, 100*r.Mean, 100*r.Min, 100*r.Max, 100*r.Std)
				metrics[fmt.Sprintf("%s_lowshot_k%d_map", name, r.Shots)] = 100 * r.Mean
				means = append(means, fmt.Sprintf("%.2f", 100*r.Mean))
			}
			tw.Flush()
			fmt.Fprintf(stdout, "%s low-shot mAP by k: %s\n", name, strings.Join(means, " / "))
		}
	}
	return c.writeMetrics(stdout, metrics)
}

// targetsOf returns the per-class targets of a feature set: its own (VOC), or one-vs-rest
// targets of its labels; single reports the latter.
func targetsOf(s *engine.FeatureSet) (targets [][]int8, single bool) {
	if s.Targets != nil {
		out := make([][]int8, len(s.Targets)/s.Classes)
		for i := range out {
			out[i] = s.Targets[i*s.Classes : (i+1)*s.Classes]
		}
		return out, false
	}
	classes := s.Classes
	for _, y := range s.Labels {
		classes = max(classes, y+1)
	}
	out := make([][]int8, len(s.Labels))
	for i, y := range s.Labels {
		out[i] = make([]int8, classes)
		for c := range out[i] {
			out[i][c] = evaluators.Absent
		}
		if y >= 0 {
			out[i][y] = evaluators.Present
		}
	}
	return out, true
}

func toMatrix(f evaluators.Features) evaluators.Matrix {
	m := evaluators.Matrix{Rows: f.N, Cols: f.Dim, Data: make([]float64, len(f.Data))}
	for i, v := range f.Data {
		m.Data[i] = float64(v)
	}
	return m
}

package evaluators

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"text/tabwriter"

	"github.com/goselfsup/goselfsup/registry"
)

func init() {
	registry.Add(registry.Evaluators, "VOC07SVM", "linear SVMs per class on VOC07, with cross-validated costs and low-shot runs",
		func() *VOC07SVMConfig {
			return &VOC07SVMConfig{Costs: []float64{1, 10, 100}, CVFolds: 3, PositiveWeight: 2, Tol: 1e-4,
				MaxIter: 2000, Features: []string{"feat5"}}
		})
}

// VOC07SVMConfig is mmselfsup's VOC07 SVM benchmark: features scaled to f / (||f|| + 1e-5),
// one linear SVM per class (squared hinge, L2, dual coordinate descent as liblinear, weight
// positive_weight on positives), the cost chosen per class from costs by cv_folds-fold
// cross-validated AP; test mAP over the classes, difficult objects excluded.
type VOC07SVMConfig struct {
	Costs          []float64 `toml:"costs" doc:"the SVM costs C to choose from by cross-validation"`
	CVFolds        int       `toml:"cv_folds" doc:"the folds of the cross-validation"`
	PositiveWeight float64   `toml:"positive_weight" doc:"the class weight of the positives"`
	Tol            float64   `toml:"tol" doc:"the tolerance of the dual solver"`
	MaxIter        int       `toml:"max_iter" doc:"the iterations of the dual solver at most"`
	// Features are the features to evaluate: feat1..feat5 (pool_cfg's MultiPooling),
	// backbone (the last stage, globally pooled) or neck (the embedding).
	Features []string `toml:"features" doc:"the features to evaluate: feat1..feat5, backbone or neck"`
	LowShot  *LowShot `toml:"low_shot" doc:"the low-shot runs: k positives per class, several draws"`
}

// LowShot runs the SVM on k positives per class, for each k of shots, samples times each.
type LowShot struct {
	Shots   []int `toml:"shots" doc:"the numbers of positives per class"`
	Samples int   `toml:"samples" doc:"the draws for each number of shots"`
}

func (l *LowShot) Validate() error {
	var errs []error
	if l.Samples < 1 {
		errs = append(errs, registry.FieldErrorf("samples", "must be at least 1, got %d", l.Samples))
	}
	return errors.Join(append(errs, positiveList("shots", l.Shots))...)
}

func (c *VOC07SVMConfig) Validate() error {
	var errs []error
	if len(c.Costs) == 0 {
		errs = append(errs, registry.FieldErrorf("costs", "must list at least one cost"))
	}
	for _, cost := range c.Costs {
		if cost <= 0 {
			errs = append(errs, registry.FieldErrorf("costs", "must be positive, got %v", c.Costs))
			break
		}
	}
	if c.CVFolds < 2 {
		errs = append(errs, registry.FieldErrorf("cv_folds", "must be at least 2, got %d", c.CVFolds))
	}
	if c.PositiveWeight <= 0 {
		errs = append(errs, registry.FieldErrorf("positive_weight", "must be positive, got %g", c.PositiveWeight))
	}
	if c.Tol <= 0 {
		errs = append(errs, registry.FieldErrorf("tol", "must be positive, got %g", c.Tol))
	}
	if c.MaxIter < 1 {
		errs = append(errs, registry.FieldErrorf("max_iter", "must be at least 1, got %d", c.MaxIter))
	}
	for _, f := range c.Features {
		if !slices.Contains(featureNames, f) {
			errs = append(errs, registry.FieldErrorf("features", "%q is not one of %v", f, featureNames))
		}
	}
	return errors.Join(errs...)
}

func (c *VOC07SVMConfig) Build(*registry.Env) (any, error) {
	return &voc07SVM{cfg: *c, lowShot: true}, nil
}

type voc07SVM struct {
	cfg     VOC07SVMConfig
	lowShot bool
}

// WithoutLowShot returns the evaluator without its low-shot runs (tools/svm --low-shot=false).
func (s *voc07SVM) WithoutLowShot() FeatureEvaluator { return &voc07SVM{cfg: s.cfg} }

func (s *voc07SVM) Features() []string { return s.cfg.Features }

// Evaluate trains and tests the SVMs on each feature, and the low-shot runs; on single-label
// data the classes are one-vs-rest and the accuracy of the highest-scoring SVM is reported
// too.
func (s *voc07SVM) Evaluate(ctx context.Context, in *FeatureInput) (map[string]any, error) {
	sc := s.cfg
	opts := VOC07Options{Costs: sc.Costs, CVFolds: sc.CVFolds, PositiveWeight: sc.PositiveWeight,
		Tol: sc.Tol, MaxIter: sc.MaxIter, Seed: in.Seed}
	trainT, singleTrain := in.Train.PerClassTargets()
	testT, single := in.Val.PerClassTargets()
	single = single && singleTrain
	out := in.Out
	metrics := map[string]any{"costs": sc.Costs}
	for _, name := range sc.Features {
		trainF, ok1 := in.Train.Features[name]
		testF, ok2 := in.Val.Features[name]
		if !ok1 || !ok2 {
			return nil, fmt.Errorf("VOC07SVM: no %q features", name)
		}
		train, test := trainF.Matrix(), testF.Matrix()
		NormalizeFeatures(train)
		NormalizeFeatures(test)
		if in.Log != nil {
			in.Log.Sugar().Infof("%s: SVMs for %d classes on %d training images of %d dimensions", name, len(trainT[0]), train.Rows, train.Cols)
		}
		res, err := VOC07SVM(train, trainT, test, testT, opts)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", name, err)
		}
		fmt.Fprintf(out, "%s: mAP %.2f", name, 100*res.MAP)
		metrics[name+"_svm_map"] = 100 * res.MAP
		aps := make([]float64, len(res.AP))
		for i, ap := range res.AP {
			aps[i] = 100 * ap
		}
		metrics[name+"_svm_ap"] = aps
		metrics[name+"_svm_cost"] = res.Cost
		if single {
			acc := OneVsRestAccuracy(res.Decisions, in.Val.Labels)
			fmt.Fprintf(out, ", one-vs-rest accuracy %.2f", acc)
			metrics[name+"_svm_accuracy"] = acc
		}
		fmt.Fprintln(out)
		tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', tabwriter.AlignRight)
		fmt.Fprintln(tw, "class\tcost\tAP\t")
		for k := range res.AP {
			fmt.Fprintf(tw, "%d\t%g\t%.2f\t\n", k, res.Cost[k], 100*res.AP[k])
		}
		tw.Flush()
		if sc.LowShot != nil {
			ls, err := LowShotSVM(train, trainT, test, testT, opts, sc.LowShot.Shots, sc.LowShot.Samples)
			if err != nil {
				return nil, fmt.Errorf("%s: low-shot: %w", name, err)
			}
			tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', tabwriter.AlignRight)
			fmt.Fprintf(tw, "%s low-shot\tmean mAP\tmin\tmax\tstd\t\n", name)
			var means []string
			for _, r := range ls {
				fmt.Fprintf(tw, "k=%d\t%.2f\t%.2f\t%.2f\t%.2f\t\n", r.Shots, 100*r.Mean, 100*r.Min, 100*r.Max, 100*r.Std)
				metrics[fmt.Sprintf("%s_lowshot_k%d_map", name, r.Shots)] = 100 * r.Mean
				means = append(means, fmt.Sprintf("%.2f", 100*r.Mean))
			}
			tw.Flush()
			fmt.Fprintf(out, "%s low-shot mAP by k: %s\n", name, strings.Join(means, " / "))
		}
	}
	return metrics, ctx.Err()
}

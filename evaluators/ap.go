package evaluators

import (
	"math"
	"sort"
)

// prPoints returns, for each distinct score from the highest down, the precision and recall
// of calling everything at or above it positive: tied scores are one threshold, so the
// result does not depend on their order.
func prPoints(scores []float64, positive []bool) (precision, recall []float64) {
	order := make([]int, len(scores))
	npos := 0
	for i := range order {
		order[i] = i
		if positive[i] {
			npos++
		}
	}
	if npos == 0 {
		return nil, nil
	}
	sort.Slice(order, func(a, b int) bool { return scores[order[a]] > scores[order[b]] })
	tp, fp := 0, 0
	for k, i := range order {
		if positive[i] {
			tp++
		} else {
			fp++
		}
		if k+1 < len(order) && scores[order[k+1]] == scores[i] {
			continue // the rest of the tie first
		}
		precision = append(precision, float64(tp)/float64(tp+fp))
		recall = append(recall, float64(tp)/float64(npos))
	}
	return precision, recall
}

// AveragePrecision is scikit-learn's average_precision_score, which the SVM benchmark's
// cross-validation scores costs with: the sum over thresholds of the recall gained times
// the precision there. NaN without positives.
func AveragePrecision(scores []float64, positive []bool) float64 {
	precision, recall := prPoints(scores, positive)
	if precision == nil {
		return math.NaN()
	}
	ap, prev := 0.0, 0.0
	for k, r := range recall {
		ap += (r - prev) * precision[k]
		prev = r
	}
	return ap
}

// VOCAveragePrecision is the SVM benchmark's test AP (mmselfsup's svm_helper.calculate_ap,
// the VOC devkit's): precision made non-increasing from the right, summed over the recall
// steps. Tied scores are one threshold. NaN without positives.
func VOCAveragePrecision(scores []float64, positive []bool) float64 {
	precision, recall := prPoints(scores, positive)
	if precision == nil {
		return math.NaN()
	}
	best := 0.0 // the highest precision at this recall or beyond
	ap := 0.0
	for k := len(recall) - 1; k >= 0; k-- {
		best = math.Max(best, precision[k])
		prev := 0.0
		if k > 0 {
			prev = recall[k-1]
		}
		ap += (recall[k] - prev) * best
	}
	return ap
}

package registry

import (
	"fmt"
	"strings"
)

// Error is a config error at a key path. It says what is wrong, where it was set and, when it
// can, what was probably meant.
type Error struct {
	Path   string // dotted key path such as "model.neg_nmu"; empty for the config as a whole
	Source string // the file or "--set ..." argument that set the key, when known
	Msg    string
	Hint   string // such as `did you mean "neg_num"?`
}

func (e *Error) Error() string {
	var b strings.Builder
	if e.Path != "" {
		b.WriteString(e.Path)
		b.WriteString(": ")
	}
	b.WriteString(e.Msg)
	switch {
	case strings.HasPrefix(e.Source, "--set"):
		fmt.Fprintf(&b, " (set by %s)", e.Source)
	case e.Source != "":
		fmt.Fprintf(&b, " (set in %s)", e.Source)
	}
	if e.Hint != "" {
		b.WriteString("; ")
		b.WriteString(e.Hint)
	}
	return b.String()
}

// Errors lists every error found in one pass, so that a user fixes a config in one go.
type Errors []*Error

func (es Errors) Error() string {
	lines := make([]string, len(es))
	for i, e := range es {
		lines[i] = e.Error()
	}
	return strings.Join(lines, "\n")
}

// Unwrap lets errors.As reach each *Error.
func (es Errors) Unwrap() []error {
	out := make([]error, len(es))
	for i, e := range es {
		out[i] = e
	}
	return out
}

// orNil returns nil for an empty list, so that callers can return it as an error.
func (es Errors) orNil() error {
	if len(es) == 0 {
		return nil
	}
	return es
}

// FieldError is returned by a Validator to blame one key of its config. The decoder turns
// it into an *Error with the full key path and the file that set the key.
type FieldError struct {
	Key string // the key inside the component's table, such as "temperature" or "scale.0"
	Msg string
}

func (e *FieldError) Error() string { return e.Key + ": " + e.Msg }

// FieldErrorf returns a *FieldError for key. Join several with errors.Join.
func FieldErrorf(key, format string, args ...any) error {
	return &FieldError{Key: key, Msg: fmt.Sprintf(format, args...)}
}

// flatten returns the leaves of a tree of joined errors.
func flatten(err error) []error {
	if err == nil {
		return nil
	}
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		var out []error
		for _, e := range j.Unwrap() {
			out = append(out, flatten(e)...)
		}
		return out
	}
	return []error{err}
}

// didYouMean returns a hint naming the candidate nearest to name, or "" when none is near.
func didYouMean(name string, candidates []string) string {
	if best := nearest(name, candidates); best != "" {
		return fmt.Sprintf("did you mean %q?", best)
	}
	return ""
}

// nearest returns the candidate with the smallest edit distance to name (ignoring case),
// provided that distance is small for the name's length.
func nearest(name string, candidates []string) string {
	lname := strings.ToLower(name)
	limit := max(1, len(name)/3)
	best, bestD := "", limit+1
	for _, c := range candidates {
		if d := editDistance(lname, strings.ToLower(c)); d < bestD {
			best, bestD = c, d
		}
	}
	return best
}

// editDistance is the optimal-string-alignment distance: insertions, deletions,
// substitutions and transpositions of adjacent characters each cost one.
func editDistance(a, b string) int {
	ra, rb := []rune(a), []rune(b)
	prev2 := make([]int, len(rb)+1)
	prev := make([]int, len(rb)+1)
	cur := make([]int, len(rb)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(ra); i++ {
		cur[0] = i
		for j := 1; j <= len(rb); j++ {
			cost := 1
			if ra[i-1] == rb[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
			if i > 1 && j > 1 && ra[i-1] == rb[j-2] && ra[i-2] == rb[j-1] {
				cur[j] = min(cur[j], prev2[j-2]+1)
			}
		}
		prev2, prev, cur = prev, cur, prev2
	}
	return prev[len(rb)]
}

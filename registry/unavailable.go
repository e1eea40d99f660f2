package registry

import "strings"

// Unavailable is a source of components that could not be loaded, such as a plugin that is
// not approved or whose `describe` failed: the type a config names may be one of its.
type Unavailable struct {
	// Name says what did not load, such as "plugin logreg".
	Name string
	// Reason says why, and when it can, what to do about it.
	Reason string
}

// NoteUnavailable records that components may be missing from r because name could not be
// loaded. A config decoded with r (or with a registry that extends r) that names an unknown
// type then says so: the error names what did not load and why, rather than only that the
// type is unknown.
func (r *Registry) NoteUnavailable(name, reason string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.unavailable = append(r.unavailable, Unavailable{Name: name, Reason: reason})
}

// Unavailable returns what NoteUnavailable recorded on the registries r extends, then on r,
// in the order noted.
func (r *Registry) Unavailable() []Unavailable {
	var out []Unavailable
	if r.parent != nil {
		out = r.parent.Unavailable()
	}
	r.mu.RLock()
	defer r.mu.RUnlock()
	return append(out, r.unavailable...)
}

// withUnavailable puts the notes of r before the hint of an unknown-type error.
func (r *Registry) withUnavailable(hint string) string {
	notes := r.Unavailable()
	if len(notes) == 0 {
		return hint
	}
	parts := make([]string, 0, len(notes)+1)
	for _, n := range notes {
		parts = append(parts, n.Name+" did not load ("+n.Reason+")")
	}
	if hint != "" {
		parts = append(parts, hint)
	}
	return strings.Join(parts, "; ")
}

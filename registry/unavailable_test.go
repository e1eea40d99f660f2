package registry

import (
	"testing"
)

func TestUnknownTypeNamesWhatDidNotLoad(t *testing.T) {
	base := New()
	base.Register(Component{Namespace: "evaluators", Type: "Accuracy", New: func() any { return &struct{ K int }{} }})
	s := NewSpec("evaluators", "LogisticRegressionProbe", nil)
	s.Path = "val_evaluator"
	_, err := base.Decode(s)
	if err == nil || err.Error() != `val_evaluator.type: unknown evaluators type "LogisticRegressionProbe"; registered: Accuracy` {
		t.Errorf("without notes: %v", err)
	}

	ext := base.Extend()
	ext.NoteUnavailable("plugin logreg", "no checksum recorded; approve it with `tools/plugin verify --write logreg`")
	ext.NoteUnavailable("plugin other", "`describe` failed")
	want := `val_evaluator.type: unknown evaluators type "LogisticRegressionProbe"; ` +
		"plugin logreg did not load (no checksum recorded; approve it with `tools/plugin verify --write logreg`); " +
		"plugin other did not load (`describe` failed); registered: Accuracy"
	if _, err := ext.Decode(s); err == nil || err.Error() != want {
		t.Errorf("with notes:\n%v\nwant\n%s", err, want)
	}
	// A registry that extends ext has its notes; ext's parent does not.
	if got := ext.Extend().Unavailable(); len(got) != 2 || got[0].Name != "plugin logreg" {
		t.Errorf("notes of an extension: %v", got)
	}
	if got := base.Unavailable(); len(got) != 0 {
		t.Errorf("the parent got notes: %v", got)
	}
	// A known type is not affected.
	if _, err := ext.Decode(NewSpec("evaluators", "Accuracy", nil)); err != nil {
		t.Error(err)
	}
}

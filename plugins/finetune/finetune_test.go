package finetune

import (
	"testing"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"
)

// The runner's console lines reach the host as log lines at their level, without the
// console's time and logger name; the rows of the per-class table as they are, and a line
// written in pieces once it is whole.
func TestConsoleLinesBecomeLogLines(t *testing.T) {
	core, logs := observer.New(zapcore.DebugLevel)
	l := &lineLogger{log: zap.New(core)}
	for _, s := range []string{
		"12/02 15:41:56 - goselfsup - INFO - Iter(train) [1/4]  lr: 5.0000e-02  loss: 0.9495\n",
		"12/02 15:41:57 - goselfsup - WARNING - ignored: randomness.deterministic\n| dark   | 39.05 | 100.0 |\n",
		"12/02 15:41:58 - goselfsup - ERR", "OR - broken\n\n",
		"tail without newline",
	} {
		if _, err := l.Write([]byte(s)); err != nil {
			t.Fatal(err)
		}
	}
	l.flush()
	want := []struct {
		level zapcore.Level
		msg   string
	}{
		{zapcore.InfoLevel, "Iter(train) [1/4]  lr: 5.0000e-02  loss: 0.9495"},
		{zapcore.WarnLevel, "ignored: randomness.deterministic"},
		{zapcore.InfoLevel, "| dark   | 39.05 | 100.0 |"},
		{zapcore.ErrorLevel, "broken"},
		{zapcore.InfoLevel, "tail without newline"},
	}
	got := logs.AllUntimed()
	if len(got) != len(want) {
		t.Fatalf("%d lines, want %d: %v", len(got), len(want), got)
	}
	for i, w := range want {
		if got[i].Level != w.level || got[i].Message != w.msg {
			t.Errorf("line %d: %s %q, want %s %q", i, got[i].Level, got[i].Message, w.level, w.msg)
		}
	}
}

func TestLastStage(t *testing.T) {
	got := lastStage([]string{"/w/vis_data/seg/iter_250", "/w/vis_data/seg/iter_1000", "/w/vis_data/seg/iter_500", "/w/vis_data/seg/notes"})
	if got != "/w/vis_data/seg/iter_1000" {
		t.Errorf("lastStage = %q", got)
	}
	if lastStage(nil) != "" {
		t.Error("lastStage(nil) is not empty")
	}
}

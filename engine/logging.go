package engine

import (
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"golang.org/x/term"
)

// newLogger returns a logger that writes human lines to console and JSON lines to the
// file jsonPath (appended, so that a resumed run continues its log). level is mmengine's
// log_level (DEBUG, INFO, WARNING, ERROR).
func newLogger(console io.Writer, jsonPath, level string) (*zap.Logger, func(), error) {
	lvl, err := parseLevel(level)
	if err != nil {
		return nil, nil, err
	}
	f, err := os.OpenFile(jsonPath, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		return nil, nil, fmt.Errorf("opening the log: %w", err)
	}
	cc := zap.NewDevelopmentEncoderConfig()
	cc.EncodeTime = zapcore.TimeEncoderOfLayout("01/02 15:04:05")
	cc.EncodeCaller = nil
	cc.CallerKey = ""
	if isTerminal(console) {
		cc.EncodeLevel = zapcore.CapitalColorLevelEncoder
	}
	jc := zap.NewProductionEncoderConfig()
	jc.EncodeTime = zapcore.RFC3339NanoTimeEncoder
	jc.EncodeDuration = zapcore.SecondsDurationEncoder
	core := zapcore.NewTee(
		zapcore.NewCore(zapcore.NewConsoleEncoder(cc), zapcore.Lock(zapcore.AddSync(console)), lvl),
		zapcore.NewCore(zapcore.NewJSONEncoder(jc), zapcore.Lock(f), zap.DebugLevel),
	)
	log := zap.New(core)
	return log, func() { _ = log.Sync(); _ = f.Close() }, nil
}

func parseLevel(s string) (zapcore.Level, error) {
	switch strings.ToUpper(s) {
	case "", "INFO":
		return zap.InfoLevel, nil
	case "DEBUG":
		return zap.DebugLevel, nil
	case "WARNING", "WARN":
		return zap.WarnLevel, nil
	case "ERROR", "CRITICAL":
		return zap.ErrorLevel, nil
	}
	return 0, fmt.Errorf("log_level %q: use DEBUG, INFO, WARNING or ERROR", s)
}

func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

// progress draws a one-line progress bar with an ETA on a terminal, and gets out of the way
// of log lines: it is a writer that clears the bar, writes, and redraws it.
type progress struct {
	mu      sync.Mutex
	out     io.Writer
	enabled bool
	line    string
	// Without a terminal, logf (when set) receives the progress line every logEvery.
	logf    func(line string)
	lastLog time.Time
}

const logEvery = 30 * time.Second

func newProgress(out io.Writer) *progress {
	return &progress{out: out, enabled: isTerminal(out)}
}

func (p *progress) Write(b []byte) (int, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.enabled && p.line != "" {
		fmt.Fprint(p.out, "\r\033[K")
	}
	n, err := p.out.Write(b)
	if p.enabled && p.line != "" {
		fmt.Fprint(p.out, p.line)
	}
	return n, err
}

// update redraws the bar for done of total steps of a stage.
func (p *progress) update(stage string, done, total int, eta time.Duration, extra string) {
	if !p.enabled {
		if p.logf != nil && (time.Since(p.lastLog) >= logEvery || done == total) {
			p.lastLog = time.Now()
			p.logf(fmt.Sprintf("%s %d/%d ETA %s %s", stage, done, total, formatDuration(eta), extra))
		}
		return
	}
	const width = 30
	filled := width * done / max(total, 1)
	bar := strings.Repeat("#", filled) + strings.Repeat(".", width-filled)
	p.mu.Lock()
	defer p.mu.Unlock()
	p.line = fmt.Sprintf("%s [%s] %d/%d ETA %s %s", stage, bar, done, total, formatDuration(eta), extra)
	fmt.Fprint(p.out, "\r\033[K"+p.line)
}

// clear removes the bar.
func (p *progress) clear() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.enabled && p.line != "" {
		fmt.Fprint(p.out, "\r\033[K")
	}
	p.line = ""
}

func formatDuration(d time.Duration) string {
	d = d.Round(time.Second)
	h, m, s := int(d.Hours()), int(d.Minutes())%60, int(d.Seconds())%60
	if h > 0 {
		return fmt.Sprintf("%d:%02d:%02d", h, m, s)
	}
	return fmt.Sprintf("%d:%02d", m, s)
}

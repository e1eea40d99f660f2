package engine

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/buffer"
	"go.uber.org/zap/zapcore"
	"golang.org/x/term"
)

// runLogs are a run's logs: human lines on the console (mmengine's format) and, once the
// run's folder exists, the same lines in <run>/<run>.log, every entry at full precision in
// <run>/log.jsonl, and the logged scalars in <run>/vis_data/scalars.json. Entries logged
// before the folder exists (while the run is being built) are kept and written when it
// opens, so that a run that fails to start leaves no files.
type runLogs struct {
	log     *zap.Logger
	text    *deferredFile
	json    *deferredFile
	scalarF *os.File
	enc     *json.Encoder
}

func newRunLogs(console io.Writer, level string) (*runLogs, error) {
	lvl, err := parseLevel(level)
	if err != nil {
		return nil, err
	}
	l := &runLogs{text: &deferredFile{}, json: &deferredFile{}}
	core := zapcore.NewTee(
		zapcore.NewCore(newConsoleEncoder(isTerminal(console)), zapcore.Lock(zapcore.AddSync(console)), lvl),
		zapcore.NewCore(newConsoleEncoder(false), zapcore.Lock(l.text), lvl),
		zapcore.NewCore(newJSONEncoder(), zapcore.Lock(l.json), zap.DebugLevel),
	)
	l.log = zap.New(core)
	return l, nil
}

// open creates the files in the run's folder dir and writes what was logged so far.
func (l *runLogs) open(dir string) error {
	name := filepath.Base(dir)
	if err := l.text.open(filepath.Join(dir, name+".log")); err != nil {
		return err
	}
	if err := l.json.open(filepath.Join(dir, "log.jsonl")); err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Join(dir, "vis_data"), 0o755); err != nil {
		return err
	}
	f, err := os.Create(filepath.Join(dir, "vis_data", "scalars.json"))
	if err != nil {
		return err
	}
	l.scalarF, l.enc = f, json.NewEncoder(f)
	return nil
}

// scalars appends one line of values to vis_data/scalars.json, with the run's epoch, iter
// and step (the iteration), as mmengine's LocalVisBackend.
func (l *runLogs) scalars(r *Runner, values map[string]float64) {
	if l.enc == nil {
		return
	}
	line := map[string]any{"epoch": r.Epoch, "iter": r.Iter, "step": r.Iter}
	for k, v := range values {
		line[k] = v
	}
	_ = l.enc.Encode(line)
}

func (l *runLogs) close() {
	_ = l.log.Sync()
	_ = l.text.Close()
	_ = l.json.Close()
	if l.scalarF != nil {
		_ = l.scalarF.Close()
	}
}

// deferredFile buffers what is written to it until open names its file.
type deferredFile struct {
	buf bytes.Buffer
	f   *os.File
}

func (d *deferredFile) Write(p []byte) (int, error) {
	if d.f == nil {
		return d.buf.Write(p)
	}
	return d.f.Write(p)
}

func (d *deferredFile) Sync() error {
	if d.f == nil {
		return nil
	}
	return d.f.Sync()
}

func (d *deferredFile) open(path string) error {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		return fmt.Errorf("opening the log: %w", err)
	}
	if _, err := f.Write(d.buf.Bytes()); err != nil {
		f.Close()
		return err
	}
	d.buf.Reset()
	d.f = f
	return nil
}

func (d *deferredFile) Close() error {
	if d.f == nil {
		return nil
	}
	return d.f.Close()
}

// consoleEncoder writes mmengine's log lines:
//
//	12/01 23:15:26 - goselfsup - INFO - Epoch(train) [1][5/15]  lr: 3.0000e-02  eta: 0:00:08  time: 0.7951  loss: 9.2788
//
// Floats show four decimals, learning rates four significant digits in exponent form.
type consoleEncoder struct {
	zapcore.Encoder // for the ObjectEncoder methods; EncodeEntry is its own
	color           bool
}

func newConsoleEncoder(color bool) zapcore.Encoder {
	return &consoleEncoder{Encoder: zapcore.NewConsoleEncoder(zap.NewDevelopmentEncoderConfig()), color: color}
}

func (e *consoleEncoder) Clone() zapcore.Encoder {
	return &consoleEncoder{Encoder: e.Encoder.Clone(), color: e.color}
}

var consolePool = buffer.NewPool()

func (e *consoleEncoder) EncodeEntry(ent zapcore.Entry, fields []zapcore.Field) (*buffer.Buffer, error) {
	b := consolePool.Get()
	level := ent.Level.CapitalString()
	if level == "WARN" {
		level = "WARNING"
	}
	if e.color {
		switch ent.Level {
		case zapcore.WarnLevel:
			level = "\x1b[33m" + level + "\x1b[0m"
		case zapcore.ErrorLevel, zapcore.FatalLevel, zapcore.PanicLevel, zapcore.DPanicLevel:
			level = "\x1b[31m" + level + "\x1b[0m"
		}
	}
	b.AppendString(ent.Time.Format("01/02 15:04:05"))
	name := "goselfsup"
	if ent.LoggerName != "" {
		name = ent.LoggerName // a plugin's lines: plugin.<name>
	}
	b.AppendString(" - " + name + " - ")
	b.AppendString(level)
	b.AppendString(" - ")
	b.AppendString(ent.Message)
	// A train or val line names its epoch and iteration in the message (mmengine's
	// "Epoch(train) [1][5/15]"); log.jsonl keeps them as fields too.
	progressLine := strings.HasPrefix(ent.Message, "Epoch(") || strings.HasPrefix(ent.Message, "Iter(")
	for _, f := range fields {
		if progressLine && (f.Key == "epoch" || f.Key == "iter") {
			continue
		}
		b.AppendString("  ")
		b.AppendString(f.Key)
		b.AppendString(": ")
		b.AppendString(formatField(f))
	}
	b.AppendByte('\n')
	return b, nil
}

// formatField renders a field's value as mmengine's log does.
func formatField(f zapcore.Field) string {
	switch f.Type {
	case zapcore.Float64Type:
		v := math.Float64frombits(uint64(f.Integer))
		if f.Key == "lr" || strings.HasSuffix(f.Key, "_lr") {
			return fmt.Sprintf("%.4e", v)
		}
		return fmt.Sprintf("%.4f", v)
	case zapcore.Float32Type:
		return fmt.Sprintf("%.4f", math.Float32frombits(uint32(f.Integer)))
	case zapcore.Int64Type, zapcore.Int32Type, zapcore.Int16Type, zapcore.Int8Type,
		zapcore.Uint64Type, zapcore.Uint32Type, zapcore.Uint16Type, zapcore.Uint8Type:
		return strconv.FormatInt(f.Integer, 10)
	case zapcore.StringType:
		return f.String
	case zapcore.BoolType:
		return strconv.FormatBool(f.Integer == 1)
	case zapcore.DurationType:
		return formatDuration(time.Duration(f.Integer))
	case zapcore.ErrorType:
		if err, ok := f.Interface.(error); ok {
			return err.Error()
		}
	}
	enc := zapcore.NewMapObjectEncoder()
	f.AddTo(enc)
	return fmt.Sprint(enc.Fields[f.Key])
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

// formatDuration writes a duration as mmengine's ETA: h:mm:ss.
func formatDuration(d time.Duration) string {
	d = d.Round(time.Second)
	return fmt.Sprintf("%d:%02d:%02d", int(d.Hours()), int(d.Minutes())%60, int(d.Seconds())%60)
}

// eta estimates the time left from the mean duration of the iterations this process ran.
type eta struct {
	total time.Duration
	n     int
}

func (e *eta) record(d time.Duration) { e.total += d; e.n++ }
func (e *eta) left(done, all int) time.Duration {
	if e.n == 0 || all <= done {
		return 0
	}
	return time.Duration(float64(e.total) / float64(e.n) * float64(all-done))
}

// newLogger returns a logger that writes mmengine's lines to console and JSON lines to the
// file jsonPath (appended). level is mmengine's log_level (DEBUG, INFO, WARNING, ERROR).
func newLogger(console io.Writer, jsonPath, level string) (*zap.Logger, func(), error) {
	lvl, err := parseLevel(level)
	if err != nil {
		return nil, nil, err
	}
	f, err := os.OpenFile(jsonPath, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		return nil, nil, fmt.Errorf("opening the log: %w", err)
	}
	core := zapcore.NewTee(
		zapcore.NewCore(newConsoleEncoder(isTerminal(console)), zapcore.Lock(zapcore.AddSync(console)), lvl),
		zapcore.NewCore(newJSONEncoder(), zapcore.Lock(f), zap.DebugLevel),
	)
	log := zap.New(core)
	return log, func() { _ = log.Sync(); _ = f.Close() }, nil
}

// newJSONEncoder writes the JSON log lines: RFC 3339 times, durations in seconds.
func newJSONEncoder() zapcore.Encoder {
	jc := zap.NewProductionEncoderConfig()
	jc.EncodeTime = zapcore.RFC3339NanoTimeEncoder
	jc.EncodeDuration = zapcore.SecondsDurationEncoder
	return zapcore.NewJSONEncoder(jc)
}

// ConsoleLogger writes INFO and above to w in the runs' console format (mmengine's lines),
// for tools that log outside a run.
func ConsoleLogger(w io.Writer) *zap.Logger {
	return zap.New(zapcore.NewCore(newConsoleEncoder(isTerminal(w)), zapcore.Lock(zapcore.AddSync(w)), zap.InfoLevel))
}

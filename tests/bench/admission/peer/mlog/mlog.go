// Package mlog is pipewarden's minimal stand-in for monis.app/mlog (see
// go.mod): the calls the workload-identity webhook makes, over go-logr's
// funcr, one JSON line per message on stderr.
package mlog

import (
	"context"
	"fmt"
	"os"

	"github.com/go-logr/logr"
	"github.com/go-logr/logr/funcr"
)

type LogLevel string

const (
	LevelWarning LogLevel = ""
	LevelInfo    LogLevel = "info"
	LevelDebug   LogLevel = "debug"
	LevelTrace   LogLevel = "trace"
	LevelAll     LogLevel = "all"
)

type LogFormat string

const (
	FormatDefault LogFormat = ""
	FormatJSON    LogFormat = "json"
	FormatCLI     LogFormat = "cli"
)

type LogSpec struct {
	Level  LogLevel  `json:"level,omitempty"`
	Format LogFormat `json:"format,omitempty"`
}

var verbosity = map[LogLevel]int{LevelWarning: 0, LevelInfo: 2, LevelDebug: 4, LevelTrace: 6, LevelAll: 108}

var current = LevelWarning

var root = funcr.NewJSON(func(obj string) { fmt.Fprintln(os.Stderr, obj) },
	funcr.Options{Verbosity: verbosity[LevelAll]})

// Logger is the subset of mlog.Logger the webhook uses.
type Logger struct{ l logr.Logger }

func New() Logger { return Logger{root} }

func (l Logger) WithName(name string) Logger { return Logger{l.l.WithName(name)} }

func (l Logger) WithValues(kv ...any) Logger { return Logger{l.l.WithValues(kv...)} }

func (l Logger) Info(msg string, kv ...any) {
	if Enabled(LevelInfo) {
		l.l.Info(msg, kv...)
	}
}

func (l Logger) Debug(msg string, kv ...any) {
	if Enabled(LevelDebug) {
		l.l.Info(msg, kv...)
	}
}

func (l Logger) Error(msg string, err error, kv ...any) { l.l.Error(err, msg, kv...) }

func Info(msg string, kv ...any)  { New().Info(msg, kv...) }
func Debug(msg string, kv ...any) { New().Debug(msg, kv...) }

func Error(msg string, err error, kv ...any) { New().Error(msg, err, kv...) }

func Fatal(err error, kv ...any) {
	New().Error("fatal", err, kv...)
	os.Exit(1)
}

// Setup returns the function that flushes the logs at exit (nothing to flush).
func Setup() func() { return func() {} }

func Enabled(level LogLevel) bool { return verbosity[current] >= verbosity[level] }

func ValidateAndSetLogLevelAndFormatGlobally(_ context.Context, spec LogSpec) error {
	if _, ok := verbosity[spec.Level]; !ok {
		return fmt.Errorf("invalid log level %q", spec.Level)
	}
	current = spec.Level
	return nil
}

// Logr is what controller-runtime logs through.
func Logr() logr.Logger { return root }

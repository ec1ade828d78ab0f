package autotls

import (
	"context"
	"log/slog"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// zapToSlog returns a zap logger whose entries go to logger, so that certmagic's own log lines (each
// ACME step, the CA's error documents, the retry schedule) come out in the gateway's format and level.
func zapToSlog(logger *slog.Logger) *zap.Logger {
	return zap.New(slogCore{logger: logger})
}

// slogCore is a zapcore.Core writing to a slog.Logger; fields become attributes.
type slogCore struct {
	logger *slog.Logger
	attrs  []any
}

func level(l zapcore.Level) slog.Level {
	switch {
	case l <= zapcore.DebugLevel:
		return slog.LevelDebug
	case l == zapcore.InfoLevel:
		return slog.LevelInfo
	case l == zapcore.WarnLevel:
		return slog.LevelWarn
	}
	return slog.LevelError
}

func (c slogCore) Enabled(l zapcore.Level) bool {
	return c.logger.Enabled(context.Background(), level(l))
}

func (c slogCore) With(fields []zapcore.Field) zapcore.Core {
	return slogCore{logger: c.logger, attrs: append(append([]any{}, c.attrs...), fieldAttrs(fields)...)}
}

func (c slogCore) Check(e zapcore.Entry, ce *zapcore.CheckedEntry) *zapcore.CheckedEntry {
	if c.Enabled(e.Level) {
		return ce.AddCore(e, c)
	}
	return ce
}

func (c slogCore) Write(e zapcore.Entry, fields []zapcore.Field) error {
	attrs := append(append([]any{"component", "acme"}, c.attrs...), fieldAttrs(fields)...)
	if e.LoggerName != "" {
		attrs = append(attrs, "logger", e.LoggerName)
	}
	c.logger.Log(context.Background(), level(e.Level), e.Message, attrs...)
	return nil
}

func (c slogCore) Sync() error { return nil }

// fieldAttrs turns zap fields into slog key/value pairs through zap's map encoder.
func fieldAttrs(fields []zapcore.Field) []any {
	enc := zapcore.NewMapObjectEncoder()
	for _, f := range fields {
		f.AddTo(enc)
	}
	out := make([]any, 0, 2*len(enc.Fields))
	for _, f := range fields { // keep the fields' order
		if v, ok := enc.Fields[f.Key]; ok {
			out = append(out, f.Key, v)
			delete(enc.Fields, f.Key)
		}
	}
	return out
}

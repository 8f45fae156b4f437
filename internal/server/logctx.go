package server

import (
	"context"
	"log/slog"
	"strconv"
	"unicode/utf8"

	"github.com/wxlogin/wxlogin/internal/tracing"
)

type requestIDKey struct{}

// WithRequestID stores the request id for log lines written with this context.
func WithRequestID(ctx context.Context, id string) context.Context {
	return context.WithValue(ctx, requestIDKey{}, id)
}

// LogOptions are the options of the handler LogHandler wraps: a duration is written as
// Go writes it ("720h0m0s", "1.5s"), where slog's JSON handler writes nanoseconds.
func LogOptions() *slog.HandlerOptions {
	return &slog.HandlerOptions{ReplaceAttr: func(_ []string, a slog.Attr) slog.Attr {
		if a.Value.Kind() == slog.KindDuration {
			return slog.String(a.Key, a.Value.Duration().String())
		}
		return a
	}}
}

// LogHandler wraps a slog.Handler so that every line logged with a request's context
// carries its request_id, and no value on a line is longer than maxLogValue.
func LogHandler(h slog.Handler) slog.Handler { return ctxHandler{h} }

// maxLogValue bounds each value of a log line, whatever logs it. What a client sends
// is clipped far shorter where it enters (a User-Agent to 512 bytes, a path to 256);
// this is the backstop that keeps a value nobody thought of from filling the disk,
// and leaves room for a panic's stack.
const maxLogValue = 16 << 10

type ctxHandler struct{ slog.Handler }

func (h ctxHandler) Handle(ctx context.Context, r slog.Record) error {
	long := false
	r.Attrs(func(a slog.Attr) bool {
		long = tooLong(a.Value)
		return !long
	})
	if long {
		clipped := slog.NewRecord(r.Time, r.Level, r.Message, r.PC)
		r.Attrs(func(a slog.Attr) bool {
			clipped.AddAttrs(clipAttr(a))
			return true
		})
		r = clipped
	}
	if id, ok := ctx.Value(requestIDKey{}).(string); ok {
		r.AddAttrs(slog.String("request_id", id))
	}
	if tracing.On() {
		if id := tracing.TraceID(ctx); id != "" {
			r.AddAttrs(slog.String("trace_id", id))
		}
	}
	return h.Handler.Handle(ctx, r)
}

// tooLong says whether a value is text longer than maxLogValue: a string or an error.
func tooLong(v slog.Value) bool {
	return len(text(v)) > maxLogValue
}

// text is a string's or an error's text, and "" for any other value (numbers, times,
// the error codes' list: nothing a client makes long).
func text(v slog.Value) string {
	switch v.Kind() {
	case slog.KindString:
		return v.String()
	case slog.KindAny:
		if err, ok := v.Any().(error); ok {
			return err.Error()
		}
	}
	return ""
}

// clipAttr cuts a value longer than maxLogValue, saying how long it was.
func clipAttr(a slog.Attr) slog.Attr {
	if v := text(a.Value); len(v) > maxLogValue {
		return slog.String(a.Key, clipText(v, maxLogValue)+"… ("+strconv.Itoa(len(v))+" bytes)")
	}
	return a
}

// clipText cuts s to at most n bytes, at a character's start.
func clipText(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}

func (h ctxHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	return ctxHandler{h.Handler.WithAttrs(attrs)}
}

func (h ctxHandler) WithGroup(name string) slog.Handler {
	return ctxHandler{h.Handler.WithGroup(name)}
}

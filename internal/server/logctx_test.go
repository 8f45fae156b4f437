package server_test

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"strings"
	"testing"

	"github.com/wxlogin/wxlogin/internal/server"
)

// However a value reaches a log line, it is no longer than the backstop: a string, or
// an error's text, is cut and says how long it was; short values are left alone.
func TestLogHandlerClipsLongValues(t *testing.T) {
	var out bytes.Buffer
	log := slog.New(server.LogHandler(slog.NewJSONHandler(&out, nil)))
	ctx := server.WithRequestID(context.Background(), "req-1")
	long := strings.Repeat("v", 100<<10)
	log.InfoContext(ctx, "test", "value", long, "error", errors.New(long), "short", "kept", "n", 7)
	line := out.String()
	if len(line) > 40<<10 {
		t.Errorf("a line with two 100 KiB values is %d bytes, want them clipped to 16 KiB each", len(line))
	}
	for _, want := range []string{`"short":"kept"`, `"n":7`, `"request_id":"req-1"`, `(102400 bytes)`} {
		if !strings.Contains(line, want) {
			t.Errorf("the line lacks %s: %.300s", want, line)
		}
	}
}

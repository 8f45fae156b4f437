package main

import (
	"math"
	"runtime/debug"
	"testing"
)

// TestTuneGC: with neither GOGC nor GOMEMLIMIT set, the collector runs at 400 % within
// 100 MiB; with either set, the runtime keeps what the operator asked for.
func TestTuneGC(t *testing.T) {
	before, limit := debug.SetGCPercent(100), debug.SetMemoryLimit(math.MaxInt64)
	t.Cleanup(func() { debug.SetGCPercent(before); debug.SetMemoryLimit(limit) })

	tuneGC(func(string) string { return "" })
	if p, l := debug.SetGCPercent(100), debug.SetMemoryLimit(math.MaxInt64); p != gcPercent || l != memoryLimit {
		t.Errorf("with nothing set: GOGC %d and a limit of %d bytes, want %d and %d", p, l, gcPercent, memoryLimit)
	}
	for _, name := range []string{"GOGC", "GOMEMLIMIT"} {
		tuneGC(func(k string) string {
			if k == name {
				return "50"
			}
			return ""
		})
		if p, l := debug.SetGCPercent(100), debug.SetMemoryLimit(math.MaxInt64); p != 100 || l != math.MaxInt64 {
			t.Errorf("with %s set: GOGC %d and a limit of %d bytes were changed", name, p, l)
		}
	}
}

package main

import (
	"runtime/debug"
	"testing"
)

// TestLimitMemory: ota-client runs with the soft memory limit clientMemory, unless
// GOMEMLIMIT sets another.
func TestLimitMemory(t *testing.T) {
	old := debug.SetMemoryLimit(-1)
	t.Cleanup(func() { debug.SetMemoryLimit(old) })
	for _, tc := range []struct {
		env  string
		want int64
	}{
		{"", clientMemory},
		{"1GiB", old},
	} {
		debug.SetMemoryLimit(old)
		t.Setenv("GOMEMLIMIT", tc.env)
		limitMemory()
		if got := debug.SetMemoryLimit(-1); got != tc.want {
			t.Errorf("GOMEMLIMIT=%q: limit %d, want %d", tc.env, got, tc.want)
		}
	}
}

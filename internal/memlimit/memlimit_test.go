package memlimit

import (
	"runtime/debug"
	"testing"
)

// limit returns the Go soft memory limit.
func limit() int64 { return debug.SetMemoryLimit(-1) }

// Reserve lowers the Go limit by what the children reserve, within the budget's Limit and
// Min, and each release raises it again; without a budget nothing changes.
func TestReserve(t *testing.T) {
	old := limit()
	t.Cleanup(func() {
		budget, reserved = nil, 0
		debug.SetMemoryLimit(old)
	})
	const mib = 1 << 20

	Reserve(100 * mib)()
	if got := limit(); got != old {
		t.Fatalf("without a budget: limit %d, want %d unchanged", got, old)
	}

	Set(Budget{Limit: 32 * mib, Total: 52 * mib, Min: 16 * mib})
	if got := limit(); got != 32*mib {
		t.Fatalf("after Set: limit %d MiB, want 32", got/mib)
	}
	r1 := Reserve(8 * mib)
	r2 := Reserve(8 * mib)
	if got := limit(); got != 32*mib {
		t.Fatalf("16 MiB reserved: limit %d MiB, want 32 (52 - 16 is over the budget's Limit)", got/mib)
	}
	r2()
	r2() // a second call changes nothing
	r3 := Reserve(32 * mib)
	if got := limit(); got != 16*mib {
		t.Fatalf("40 MiB reserved: limit %d MiB, want 16 (52 - 40 is under Min)", got/mib)
	}
	r1()
	if got := limit(); got != 20*mib {
		t.Fatalf("32 MiB reserved: limit %d MiB, want 20", got/mib)
	}
	r3()
	if got := limit(); got != 32*mib {
		t.Fatalf("all released: limit %d MiB, want 32", got/mib)
	}
	Reserve(1 << 62)()
	if got := limit(); got != 32*mib {
		t.Fatalf("after a reservation beyond the budget: limit %d MiB, want 32", got/mib)
	}
}

// Package memlimit keeps a process and the child processes it runs within one memory
// budget: while a child that needs much memory runs (ota-client's `xz -d` of a delta part
// with a large dictionary), the Go soft memory limit (runtime/debug.SetMemoryLimit) is
// lowered by what the child may fill, and raised again when it ends. The garbage collector
// then works harder only while such a child runs, instead of for the whole process.
//
// The budget is the process's: Set is called once, by the main package; until then Reserve
// changes nothing (tests, and programs that set no budget).
package memlimit

import (
	"runtime/debug"
	"sync"
)

// Budget is how the Go memory of the process and its children's share memory.
type Budget struct {
	// Limit is the Go soft memory limit while no child holds a reservation.
	Limit int64
	// Total bounds the Go soft memory limit plus the memory reserved for children.
	Total int64
	// Min is the lowest the Go limit is lowered to, whatever the children reserve: below
	// what the process needs to work, the collector would run without pause.
	Min int64
}

var (
	mu       sync.Mutex
	budget   *Budget
	reserved int64 // by the children running
)

// Set makes b the budget of the process and sets the Go soft memory limit it gives.
func Set(b Budget) {
	mu.Lock()
	defer mu.Unlock()
	budget = &b
	// Nothing to return to the system yet: the process has only started.
	debug.SetMemoryLimit(goLimit())
}

// Reserve declares a child process that fills up to n bytes until release is called (once,
// when it has ended). Without a budget (Set), it does nothing.
func Reserve(n uint64) (release func()) {
	mu.Lock()
	defer mu.Unlock()
	if budget == nil || n == 0 {
		return func() {}
	}
	r := int64(min(n, uint64(budget.Total)))
	reserved += r
	apply()
	return sync.OnceFunc(func() {
		mu.Lock()
		defer mu.Unlock()
		reserved -= r
		apply()
	})
}

// apply sets the Go soft memory limit the budget leaves beside the reservations. When it
// lowers the limit, the memory over it is returned to the system at once: the runtime
// would otherwise return it a little at a time while the child grows.
func apply() {
	l := goLimit()
	if debug.SetMemoryLimit(l) > l {
		debug.FreeOSMemory()
	}
}

// goLimit returns the Go soft memory limit the budget leaves beside the reservations.
func goLimit() int64 {
	return max(min(budget.Limit, budget.Total-reserved), budget.Min)
}

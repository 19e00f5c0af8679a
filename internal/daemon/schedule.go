package daemon

import (
	"math/rand/v2"
	"time"
)

// MaxBackoff is the longest wait between two checks while they fail, unless the interval
// is longer: a device checking often backs off from a failing server, one checking rarely
// keeps its interval.
const MaxBackoff = time.Hour

// checkDelay is the wait before the next periodic check, after failures consecutive
// failures of the automatic operations (check, download, install): the interval, doubled
// for each failure up to max(interval, MaxBackoff), plus a random delay below jitter.
func checkDelay(interval, jitter time.Duration, failures int) time.Duration {
	d := interval
	limit := max(interval, MaxBackoff)
	for range failures {
		if d >= limit/2 {
			d = limit
			break
		}
		d *= 2
	}
	return d + randBelow(jitter)
}

// randBelow returns a random duration in [0, d), 0 when d is not positive.
func randBelow(d time.Duration) time.Duration {
	if d <= 0 {
		return 0
	}
	return rand.N(d)
}

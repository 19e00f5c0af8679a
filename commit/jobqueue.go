package commit

import (
	"container/heap"
	"context"
	"sync"
)

// jobQueue hands the walk's jobs to the workers, largest content first. The walk of a
// directory is much faster than compressing what it finds, so most jobs wait here and the
// order is close to largest-first: a large file found late in the walk (the tree is walked
// in name order) no longer leaves one worker compressing it alone at the end while the
// others idle.
//
// Jobs of files on disk hold only a path and are not limited: the queue grows to at most a
// job per file, less than the tree being built holds per file. Jobs that hold memory or a
// temporary file (tar sources) are limited to held at a time: push waits for done.
type jobQueue struct {
	mu     sync.Mutex
	ready  sync.Cond // signalled on push and close
	jobs   jobHeap
	seq    int64 // pushes so far, the tie-breaker that keeps equal sizes in walk order
	closed bool
	// slots holds a token per queued or running job that holds memory or a temporary file.
	slots chan struct{}
}

func newJobQueue(held int) *jobQueue {
	q := &jobQueue{slots: make(chan struct{}, held)}
	q.ready.L = &q.mu
	return q
}

// holds reports whether j holds memory or a temporary file until it is done.
func holds(j job) bool { return j.data != nil || j.spilled }

// push queues j, first waiting for a slot when it holds memory or a temporary file; it
// fails only when ctx ends while it waits.
func (q *jobQueue) push(ctx context.Context, j job) error {
	if holds(j) {
		select {
		case q.slots <- struct{}{}:
		case <-ctx.Done():
			return context.Cause(ctx)
		}
	}
	q.mu.Lock()
	heap.Push(&q.jobs, queued{job: j, size: j.contentSize(), seq: q.seq})
	q.seq++
	q.mu.Unlock()
	q.ready.Signal()
	return nil
}

// pop returns the queued job with the most content, waiting for one; ok is false once the
// queue is closed and empty.
func (q *jobQueue) pop() (j job, ok bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	for len(q.jobs) == 0 {
		if q.closed {
			return job{}, false
		}
		q.ready.Wait()
	}
	return heap.Pop(&q.jobs).(queued).job, true
}

// done frees the slot of a job that pop returned, once the job has released what it held.
func (q *jobQueue) done(j job) {
	if holds(j) {
		<-q.slots
	}
}

// close tells the workers that no more jobs come.
func (q *jobQueue) close() {
	q.mu.Lock()
	q.closed = true
	q.mu.Unlock()
	q.ready.Broadcast()
}

// contentSize is the number of content bytes the job stores.
func (j job) contentSize() int64 {
	if j.data != nil {
		return int64(j.data.Len())
	}
	return j.size
}

// queued is a job in the heap.
type queued struct {
	job
	size, seq int64
}

// jobHeap is a max-heap by size, then min by seq (container/heap.Interface).
type jobHeap []queued

func (h jobHeap) Len() int { return len(h) }
func (h jobHeap) Less(a, b int) bool {
	if h[a].size != h[b].size {
		return h[a].size > h[b].size
	}
	return h[a].seq < h[b].seq
}
func (h jobHeap) Swap(a, b int) { h[a], h[b] = h[b], h[a] }
func (h *jobHeap) Push(x any)   { *h = append(*h, x.(queued)) }
func (h *jobHeap) Pop() any {
	old := *h
	x := old[len(old)-1]
	*h = old[:len(old)-1]
	return x
}

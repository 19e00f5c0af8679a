package sysroot

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"
)

// TestReadOnly: a read-only Open does not wait for the lock another Sysroot holds, sees the
// same deployments, and every method that writes refuses with ErrReadOnly.
func TestReadOnly(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	path := ourSysroot(t, f, "uboot", f.c1, f.c2)
	locked, err := Open(path, OpenOptions{Waiting: func() { t.Error("the first Open waited for a lock") }})
	if err != nil {
		t.Fatal(err)
	}
	defer locked.Close()

	done := make(chan struct{})
	var ro *Sysroot
	go func() {
		defer close(done)
		ro, err = Open(path, OpenOptions{ReadOnly: true, Waiting: func() { t.Error("a read-only Open waited for the lock") }})
	}()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("a read-only Open waits for the lock")
	}
	if err != nil {
		t.Fatal(err)
	}
	name := func(d *Deployment) string { return d.Name() }
	if got, want := mapSlice(ro.Deployments(), name), mapSlice(locked.Deployments(), name); !slices.Equal(got, want) || len(got) != 2 {
		t.Errorf("read-only deployments %q, want %q", got, want)
	}
	d := ro.Deployments()[0]
	for op, err := range map[string]error{
		"Pull":             ro.Pull(ctx, f.src, f.c1),
		"WriteDefault":     ro.WriteDefault(ctx, d),
		"WriteDeployments": ro.WriteDeployments(ctx, ro.Deployments()),
		"WriteResult":      ro.WriteResult("myos", Result{}),
		"DeployTree":       second(ro.DeployTree(ctx, f.c1, DeployOptions{OSName: "myos"})),
		"CleanupBoot":      second(ro.CleanupBoot()),
		"Cleanup":          second(ro.Cleanup(ctx)),
	} {
		if !errors.Is(err, ErrReadOnly) {
			t.Errorf("%s on a read-only sysroot: %v, want ErrReadOnly", op, err)
		}
	}
	if err := ro.Close(); err != nil {
		t.Error(err)
	}
}

func mapSlice[T, U any](s []T, f func(T) U) []U {
	out := make([]U, len(s))
	for i, v := range s {
		out[i] = f(v)
	}
	return out
}

func second[T any](_ T, err error) error { return err }

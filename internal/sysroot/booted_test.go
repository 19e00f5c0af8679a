package sysroot

import (
	"context"
	"testing"
)

// TestRootDeployment: the deployment mounted as the root is found by its directory's
// device and inode, before and after the boot configuration is rewritten (when the ostree=
// boot link of the command line it booted with no longer leads to it).
func TestRootDeployment(t *testing.T) {
	f := newFixture(t)
	path := ourSysroot(t, f, "uboot", f.c1, f.c2)
	s, err := Open(path, OpenOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	deps := s.Deployments()
	if len(deps) != 2 {
		t.Fatalf("%d deployments", len(deps))
	}
	def, rollback := deps[0], deps[1]
	check := func(when string) {
		t.Helper()
		for _, d := range deps {
			if got, err := s.RootDeployment(s.DeploymentDir(d)); err != nil || got != d {
				t.Errorf("%s: RootDeployment(%s) = %v, %v", when, d.Name(), got, err)
			}
		}
		if got, err := s.RootDeployment(path); err != nil || got != nil {
			t.Errorf("%s: RootDeployment of the physical root = %v, %v; want none", when, got, err)
		}
	}
	check("before the rollback")

	// The rollback deployment booted becomes the default, as mark-good does after a
	// fallback: new boot links, in the other boot version.
	if err := s.WriteDeployments(context.Background(), []*Deployment{rollback, def}); err != nil {
		t.Fatal(err)
	}
	deps = s.Deployments()
	if deps[0].Name() != rollback.Name() {
		t.Fatalf("default after the swap: %s", deps[0].Name())
	}
	check("after the rollback")
}

package ext4

import (
	"errors"
	"fmt"
)

// allocator hands out data blocks in order, skipping group metadata.
type allocator struct {
	g    *geometry
	grp  int64
	next int64
}

// newAllocator starts allocating at the first data block of g.
func newAllocator(g *geometry) allocator { return allocator{g: g, grp: 0, next: g.meta(0)} }

// take allocates n blocks as few runs as possible, or reports false.
func (a *allocator) take(n int64, runs []extent) ([]extent, bool) {
	var lblk uint32
	for n > 0 {
		if a.grp >= a.g.groups {
			return runs, false
		}
		end := a.g.groupEnd(a.grp)
		if a.next >= end {
			a.grp++
			a.next = a.grp*blocksPerGroup + a.g.meta(a.grp)
			continue
		}
		k := min(n, end-a.next, maxExtentLen)
		if l := len(runs); l > 0 && int64(runs[l-1].pblk)+int64(runs[l-1].len) == a.next && int64(runs[l-1].len)+k <= maxExtentLen {
			runs[l-1].len += uint32(k)
		} else {
			runs = append(runs, extent{lblk: lblk, len: uint32(k), pblk: uint32(a.next)})
		}
		lblk += uint32(k)
		a.next += k
		n -= k
	}
	return runs, true
}

// free is the number of blocks left.
func (a *allocator) free() int64 {
	var f int64
	for i := a.grp; i < a.g.groups; i++ {
		start := i*blocksPerGroup + a.g.meta(i)
		if i == a.grp {
			start = a.next
		}
		f += max(a.g.groupEnd(i)-start, 0)
	}
	return f
}

// allocFile allocates the extent tree leaves and data blocks of n.
func (a *allocator) allocFile(n *node, what string) error {
	if n.nblocks == 0 {
		return nil
	}
	try := *a
	runs, ok := try.take(n.nblocks, nil)
	if !ok {
		return fmt.Errorf("%w: out of blocks at %s", ErrTooSmall, what)
	}
	if len(runs) <= 4 {
		*a, n.extents = try, runs
		return nil
	}
	for leaves := int64((len(runs) + leafExtents - 1) / leafExtents); ; leaves++ {
		if leaves > 4 {
			return fmt.Errorf("ext4: %s needs more than %d extents", what, maxExtents)
		}
		try = *a
		lr, ok := try.take(leaves, nil)
		if !ok {
			return fmt.Errorf("%w: out of blocks at %s", ErrTooSmall, what)
		}
		runs, ok = try.take(n.nblocks, nil)
		if !ok {
			return fmt.Errorf("%w: out of blocks at %s", ErrTooSmall, what)
		}
		if int64(len(runs)) <= leaves*leafExtents {
			n.leaves = n.leaves[:0]
			for _, r := range lr {
				for i := uint32(0); i < r.len; i++ {
					n.leaves = append(n.leaves, r.pblk+i)
				}
			}
			*a, n.extents = try, runs
			return nil
		}
	}
}

// layout is a plan placed on a geometry.
type layout struct {
	*plan
	geo     *geometry
	journal node
	used    int64 // blocks used by files, directories, xattrs and the journal
}

// place allocates all blocks of p on a filesystem of blocks blocks.
func place(p *plan, blocks int64) (*layout, error) {
	geo, err := newGeometry(blocks, int64(len(p.nodes)))
	if err != nil {
		return nil, err
	}
	l := &layout{plan: p, geo: geo}
	a := newAllocator(geo)
	total := a.free()
	l.journal = node{ino: journalIno, nblocks: geo.jblocks, links: 1, in: &Inode{Mode: ModeRegular | 0o600, Size: geo.jblocks * blockSize, Mtime: 0}}
	if err := a.allocFile(&l.journal, "the journal"); err != nil {
		return nil, err
	}
	for _, n := range p.nodes {
		if n == nil {
			continue
		}
		n.xblk, n.leaves, n.extents = 0, nil, nil
		if n.xblock != nil {
			r, ok := a.take(1, nil)
			if !ok {
				return nil, fmt.Errorf("%w: out of blocks at %s", ErrTooSmall, n.path)
			}
			n.xblk = r[0].pblk
		}
		if err := a.allocFile(n, n.path); err != nil {
			return nil, err
		}
	}
	l.used = total - a.free()
	return l, nil
}

// size is WriteSize's search for the smallest filesystem p fits in.
func (p *plan) size() int64 {
	fits := func(blocks int64) (bool, error) {
		_, err := place(p, blocks)
		if err == nil {
			return true, nil
		}
		if errors.Is(err, ErrTooSmall) {
			return false, nil
		}
		return false, err
	}
	blocks := p.content + 1024 + 64
	for range 1 << 20 {
		g, err := newGeometry(blocks, int64(len(p.nodes)))
		if err != nil {
			blocks += 256
			continue
		}
		ok, err := fits(blocks)
		if err != nil {
			return 0
		}
		if ok {
			final := (blocks + max(blocks/100, 256)) * blockSize
			final = (final + mib - 1) / mib * mib
			if ok, _ := fits(final / blockSize); ok {
				return final
			}
			blocks += 256
			continue
		}
		var meta int64
		for i := range g.groups {
			meta += g.meta(i)
		}
		need := p.content + g.jblocks + meta + int64(len(p.nodes))/leafExtents + 1
		blocks += max(256, need-g.blocks)
	}
	return 0
}

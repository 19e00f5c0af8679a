package image

import (
	"cmp"
	"encoding/binary"
	"fmt"
	"os"
	"slices"

	"github.com/diskfs/go-diskfs/partition/gpt"
	"github.com/diskfs/go-diskfs/partition/mbr"

	"github.com/otakit/ota/image/ext4"
	"github.com/otakit/ota/internal/ostree"
)

const sector = 512

// gptReserved is what the primary GPT (protective MBR, header, 128 entries) occupies at
// the start of the disk and the backup (entries and header) at its end.
const gptReserved = 34 * sector

// CheckSize checks that an image of size bytes (0: sized to its contents) holds the
// layout's partitions and tables with room for at least an empty sysroot: what can be
// known before the sysroot is deployed and its real size known.
func CheckSize(l Layout, size int64) error {
	if err := l.Validate(); err != nil {
		return fmt.Errorf("layout: %w", err)
	}
	sysIdx := slices.IndexFunc(l.Partitions, func(p Partition) bool { return p.FS == "sysroot" })
	_, _, err := place(l, sysIdx, ext4.WriteSize(&ext4.Inode{Mode: ostree.ModeDir | 0o755}), size)
	return err
}

// place computes the partitions' extents and the image size.
func place(l Layout, sysIdx int, need, imageSize int64) ([]Extent, int64, error) {
	align := l.align()
	end := int64(sector)
	tail := int64(0)
	if l.Table == "gpt" {
		end, tail = gptReserved, gptReserved-sector
	}
	ext := make([]Extent, len(l.Partitions))
	for i, p := range l.Partitions {
		start := int64(p.Offset)
		if start == 0 {
			start = roundUp(max(end, align), align)
		} else if start < end {
			return nil, 0, fmt.Errorf("partition %s: offset %s overlaps what precedes it (which ends at %d)", p.Name, p.Offset, end)
		}
		size := int64(p.Size)
		if i == sysIdx {
			switch {
			case size > 0:
			case imageSize > 0 && i == len(l.Partitions)-1:
				size = (imageSize - tail - start) &^ 4095
				if size < need {
					left := "no room"
					if size > 0 {
						left = humanSize(size)
					}
					return nil, 0, fmt.Errorf("image size %s leaves %s for partition %s, which starts at %s: too small for the sysroot, which needs %s",
						humanSize(imageSize), left, p.Name, humanSize(start), humanSize(need))
				}
			default:
				// Room for an update as large as the system itself.
				size = roundUp(2*need+64<<20, align)
			}
			if size < need {
				return nil, 0, fmt.Errorf("partition %s: %s is too small for the sysroot, which needs %s", p.Name, humanSize(size), humanSize(need))
			}
		}
		ext[i] = Extent{Name: p.Name, FS: p.FS, Start: start, Size: size}
		end = start + size
	}
	total := roundUp(end+tail, sector)
	if imageSize == 0 {
		imageSize = roundUp(total, 1<<20)
	} else if imageSize < total {
		return nil, 0, fmt.Errorf("image size %s is too small for the layout, which needs %s", humanSize(imageSize), humanSize(total))
	}
	if l.Table == "mbr" && imageSize > 0xffffffff*sector {
		return nil, 0, fmt.Errorf("image size %s is too large for an MBR (2 TiB); use table: gpt", humanSize(imageSize))
	}
	return ext, imageSize, nil
}

func roundUp(n, m int64) int64 { return (n + m - 1) / m * m }

func humanSize(n int64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.1f GiB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	}
	return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
}

// checkOverlaps checks that no two regions of the image (partition table, partitions,
// raw blobs) overlap and that all lie inside the image.
func checkOverlaps(table string, r *Result) error {
	type region struct {
		what       string
		start, end int64
	}
	regions := []region{{"the MBR", 0, sector}}
	if table == "gpt" {
		regions = []region{{"the primary GPT", 0, gptReserved}, {"the backup GPT", r.Size - gptReserved + sector, r.Size}}
	}
	for _, p := range r.Partitions {
		regions = append(regions, region{"partition " + p.Name, p.Start, p.Start + p.Size})
	}
	for _, b := range r.Raw {
		regions = append(regions, region{"raw blob " + b.Name, b.Start, b.Start + b.Size})
	}
	slices.SortStableFunc(regions, func(a, b region) int { return cmp.Compare(a.start, b.start) })
	for i, a := range regions {
		if a.end > r.Size {
			return fmt.Errorf("%s (%d-%d) ends beyond the image (%d bytes)", a.what, a.start, a.end, r.Size)
		}
		if i > 0 && regions[i-1].end > a.start {
			b := regions[i-1]
			return fmt.Errorf("%s (bytes %d-%d) overlaps %s (bytes %d-%d)", a.what, a.start, a.end, b.what, b.start, b.end)
		}
	}
	return nil
}

// writeTable writes the partition table (and, for MBR, the disk signature).
func writeTable(f *os.File, l Layout, r *Result, ids identity) error {
	if l.Table == "mbr" {
		t := &mbr.Table{LogicalSectorSize: sector, PhysicalSectorSize: sector}
		for i, p := range r.Partitions {
			typ, _ := partitionType(l.Table, l.Partitions[i])
			t.Partitions = append(t.Partitions, &mbr.Partition{
				Index: i + 1, Bootable: l.Partitions[i].Bootable, Type: mbr.Type(typ[0]),
				Start: uint32(p.Start / sector), Size: uint32(p.Size / sector),
			})
		}
		if err := t.Write(f, r.Size); err != nil {
			return err
		}
		_, err := f.WriteAt(binary.LittleEndian.AppendUint32(nil, ids.diskID()), 440)
		return err
	}
	t := &gpt.Table{LogicalSectorSize: sector, PhysicalSectorSize: sector, ProtectiveMBR: true, GUID: uuidString(ids.bytes("gpt"))}
	for i, p := range r.Partitions {
		typ, _ := partitionType(l.Table, l.Partitions[i])
		var attrs uint64
		if l.Partitions[i].Bootable {
			attrs = 1 << 2 // legacy BIOS bootable
		}
		t.Partitions = append(t.Partitions, &gpt.Partition{
			Index: i + 1, Start: uint64(p.Start / sector), End: uint64((p.Start+p.Size)/sector - 1), Size: uint64(p.Size),
			Type: gpt.Type(typ), Name: p.Name, GUID: p.UUID, Attributes: attrs,
		})
	}
	return t.Write(f, r.Size)
}

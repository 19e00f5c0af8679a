// Package bmap writes block maps in bmaptool's XML format (version 2.0) for
// sparse images and compresses images with zstd, so that images can be
// flashed with "bmaptool copy".
package bmap

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// BlockSize is the block size, in bytes, used in generated bmap files.
const BlockSize = 4096

const header = `<?xml version="1.0" ?>
<!-- This file contains the block map for an image file, which is basically
     a list of useful (mapped) block numbers in the image file. In other words,
     it lists only those blocks which contain data (boot sector, partition
     table, file-system metadata, files, directories, extents, etc). These
     blocks have to be copied to the target device. The other blocks do not
     contain any useful data and do not have to be copied to the target
     device.

     The block map an optimization which allows to copy or flash the image to
     the image quicker than copying of flashing the entire image. This is
     because with bmap less data is copied: <MappedBlocksCount> blocks instead
     of <BlocksCount> blocks.

     Besides the machine-readable data, this file contains useful commentaries
     which contain human-readable information like image size, percentage of
     mapped data, etc.

     The 'version' attribute is the block map file format version in the
     'major.minor' format. The version major number is increased whenever an
     incompatible block map format change is made. The minor number changes
     in case of minor backward-compatible changes. -->

<bmap version="2.0">
    <!-- Image size in bytes: %s -->
    <ImageSize> %d </ImageSize>

    <!-- Size of a block in bytes -->
    <BlockSize> %d </BlockSize>

    <!-- Count of blocks in the image file -->
    <BlocksCount> %d </BlocksCount>

    <!-- Count of mapped blocks: `

// blockRange is an inclusive range of block numbers.
type blockRange struct{ first, last int64 }

// Write writes a bmap (format version 2.0, sha256 checksums, 4096-byte
// blocks) for the image file to w. The output matches what "bmaptool create"
// produces: mapped ranges are the file's data extents, found with SEEK_DATA
// and SEEK_HOLE and widened to whole blocks, and BmapFileChecksum is the
// sha256 of the whole bmap file with that field set to 64 zeros.
func Write(w io.Writer, image string) error {
	f, err := os.Open(image)
	if err != nil {
		return err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return err
	}
	size := st.Size()
	if size == 0 {
		return fmt.Errorf("bmap: image %s is empty", image)
	}
	blocks := (size + BlockSize - 1) / BlockSize
	ranges, err := mappedRanges(f, size)
	if err != nil {
		return fmt.Errorf("bmap: %s: %w", image, err)
	}

	// Built like bmaptool: the header is written with blank placeholders
	// that are overwritten in place once the mapped block count is known.
	var b bytes.Buffer
	sizeHuman := humanSize(size)
	fmt.Fprintf(&b, header, sizeHuman, size, BlockSize, blocks)
	countPos1 := b.Len()
	fmt.Fprintf(&b, "%s or %s   -->\n", strings.Repeat(" ", len(sizeHuman)), strings.Repeat(" ", len("100.0%")))
	b.WriteString("    <MappedBlocksCount> ")
	countPos2 := b.Len()
	fmt.Fprintf(&b, "%s </MappedBlocksCount>\n\n", strings.Repeat(" ", len(strconv.FormatInt(blocks, 10))))
	b.WriteString("    <!-- Type of checksum used in this file -->\n")
	b.WriteString("    <ChecksumType> sha256 </ChecksumType>\n\n")
	b.WriteString("    <!-- The checksum of this bmap file. When it is calculated, the value of\n")
	b.WriteString("         the checksum has be zero (all ASCII \"0\" symbols).  -->\n")
	b.WriteString("    <BmapFileChecksum> ")
	chksumPos := b.Len()
	b.WriteString(strings.Repeat("0", sha256.Size*2) + " </BmapFileChecksum>\n\n")
	b.WriteString("    <!-- The block map which consists of elements which may either be a\n")
	b.WriteString("         range of blocks or a single block. The 'chksum' attribute\n")
	b.WriteString("         (if present) is the checksum of this blocks range. -->\n")
	b.WriteString("    <BlockMap>\n")

	var mapped int64
	for _, r := range ranges {
		mapped += r.last - r.first + 1
		sum, err := rangeChecksum(f, r)
		if err != nil {
			return fmt.Errorf("bmap: %s: %w", image, err)
		}
		if r.first != r.last {
			fmt.Fprintf(&b, "        <Range chksum=\"%s\"> %d-%d </Range>\n", sum, r.first, r.last)
		} else {
			fmt.Fprintf(&b, "        <Range chksum=\"%s\"> %d </Range>\n", sum, r.first)
		}
	}
	b.WriteString("    </BlockMap>\n</bmap>\n")

	out := b.Bytes()
	percent := float64(mapped) * 100.0 / float64(blocks)
	overwrite(&out, countPos1, fmt.Sprintf("%s or %.1f%%", humanSize(mapped*BlockSize), percent))
	overwrite(&out, countPos2, strconv.FormatInt(mapped, 10))
	sum := sha256.Sum256(out)
	overwrite(&out, chksumPos, hex.EncodeToString(sum[:]))
	_, err = w.Write(out)
	return err
}

// overwrite replaces buf's bytes at pos with s, growing buf if s runs past
// its end, as writing at a file offset would.
func overwrite(buf *[]byte, pos int, s string) {
	if end := pos + len(s); end > len(*buf) {
		*buf = append(*buf, make([]byte, end-len(*buf))...)
	}
	copy((*buf)[pos:], s)
}

// mappedRanges returns the block ranges of f that hold data, in order, with
// adjacent or overlapping ranges merged.
func mappedRanges(f *os.File, size int64) ([]blockRange, error) {
	fd := int(f.Fd())
	var ranges []blockRange
	for off := int64(0); off < size; {
		start, err := unix.Seek(fd, off, unix.SEEK_DATA)
		if errors.Is(err, unix.ENXIO) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("seek data: %w", err)
		}
		if start >= size {
			break
		}
		end, err := unix.Seek(fd, start, unix.SEEK_HOLE)
		if err != nil && !errors.Is(err, unix.ENXIO) {
			return nil, fmt.Errorf("seek hole: %w", err)
		}
		if err != nil || end > size {
			end = size
		}
		r := blockRange{start / BlockSize, (end+BlockSize-1)/BlockSize - 1}
		if n := len(ranges); n > 0 && r.first <= ranges[n-1].last+1 {
			ranges[n-1].last = max(ranges[n-1].last, r.last)
		} else {
			ranges = append(ranges, r)
		}
		off = end
	}
	return ranges, nil
}

// rangeChecksum returns the hex sha256 of the bytes of r, truncated at the
// end of the file.
func rangeChecksum(f *os.File, r blockRange) (string, error) {
	h := sha256.New()
	n := (r.last - r.first + 1) * BlockSize
	if _, err := io.Copy(h, io.NewSectionReader(f, r.first*BlockSize, n)); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// humanSize formats size like bmaptool's human_size helper.
func humanSize(size int64) string {
	if size == 1 {
		return "1 byte"
	}
	if size < 512 {
		return fmt.Sprintf("%d bytes", size)
	}
	s := float64(size)
	for _, unit := range []string{"KiB", "MiB", "GiB", "TiB"} {
		s /= 1024
		if s < 1024 {
			return fmt.Sprintf("%.1f %s", s, unit)
		}
	}
	return fmt.Sprintf("%.1f EiB", s)
}

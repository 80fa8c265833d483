// Package crc32c is the whole-object checksum Ferry records for every
// file: CRC32C (Castagnoli), as S3's x-amz-checksum-crc32c carries it.
// CRCs of consecutive byte ranges combine without the bytes (Combine), so
// parts, pieces and appends that arrive separately make the whole file's
// CRC without anything being read back.
package crc32c

import (
	"encoding/base64"
	"encoding/binary"
	"fmt"
	"hash/crc32"
)

// Table is the Castagnoli table (hardware-accelerated on amd64 and arm64).
var Table = crc32.MakeTable(crc32.Castagnoli)

// Update is crc extended by p.
func Update(crc uint32, p []byte) uint32 { return crc32.Update(crc, Table, p) }

// Checksum is the CRC32C of p.
func Checksum(p []byte) uint32 { return crc32.Checksum(p, Table) }

// Combine returns the CRC of A followed by B from crcA, crcB and B's
// length (zlib's crc32_combine, for the Castagnoli polynomial).
func Combine(crcA, crcB uint32, lenB int64) uint32 {
	return multmodp(x2nmodp(lenB, 3), crcA) ^ crcB
}

// Encode is the S3 form: base64 of the big-endian 4 bytes.
func Encode(crc uint32) string {
	var b [4]byte
	binary.BigEndian.PutUint32(b[:], crc)
	return base64.StdEncoding.EncodeToString(b[:])
}

// Parse reads Encode's form.
func Parse(s string) (uint32, error) {
	b, err := base64.StdEncoding.DecodeString(s)
	if err != nil || len(b) != 4 {
		return 0, fmt.Errorf("crc32c %q: want the 4-byte big-endian CRC32C in standard base64 (8 characters, like \"AAAAAA==\")", s)
	}
	return binary.BigEndian.Uint32(b), nil
}

const poly = 0x82f63b78 // Castagnoli, reversed

// multmodp multiplies a and b modulo the polynomial (bit-reversed).
func multmodp(a, b uint32) uint32 {
	m := uint32(1) << 31
	var p uint32
	for {
		if a&m != 0 {
			p ^= b
			if a&(m-1) == 0 {
				return p
			}
		}
		m >>= 1
		if b&1 != 0 {
			b = b>>1 ^ poly
		} else {
			b >>= 1
		}
	}
}

// x2n[k] is x^(2^k) modulo the polynomial, for every k x2nmodp can reach
// (zlib wraps k at 32, which holds for its polynomial but not this one).
var x2n = func() (t [67]uint32) {
	p := uint32(1) << 30 // x^1
	t[0] = p
	for k := 1; k < len(t); k++ {
		p = multmodp(p, p)
		t[k] = p
	}
	return t
}()

// x2nmodp is x^(n * 2^k) modulo the polynomial.
func x2nmodp(n int64, k uint) uint32 {
	p := uint32(1) << 31 // x^0
	for n != 0 {
		if n&1 != 0 {
			p = multmodp(x2n[k], p)
		}
		n >>= 1
		k++
	}
	return p
}

package crc32c

import (
	"math/rand/v2"
	"testing"
)

// Combining the CRCs of any split gives the CRC of the whole, including
// empty halves and lengths past 2^32 bits.
func TestCombine(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	buf := make([]byte, 1<<20)
	for i := range buf {
		buf[i] = byte(r.Uint32())
	}
	for range 200 {
		n := r.IntN(len(buf) + 1)
		cut := r.IntN(n + 1)
		a, b := buf[:cut], buf[cut:n]
		if got, want := Combine(Checksum(a), Checksum(b), int64(len(b))), Checksum(buf[:n]); got != want {
			t.Fatalf("Combine at %d of %d = %08x, want %08x", cut, n, got, want)
		}
	}
	if got := Combine(Checksum(buf), 0, 0); got != Checksum(buf) {
		t.Fatalf("Combine with an empty B = %08x, want the CRC of A", got)
	}
	// 1 GiB of zeros after "x": built by doubling, against Update's result.
	zeros := make([]byte, 1<<20)
	crc, length := Checksum(zeros), int64(len(zeros))
	for length < 1<<30 {
		crc, length = Combine(crc, crc, length), 2*length
	}
	want := Checksum([]byte("x"))
	for range 1 << 10 {
		want = Update(want, zeros)
	}
	if got := Combine(Checksum([]byte("x")), crc, length); got != want {
		t.Fatalf("Combine over 1 GiB = %08x, want %08x", got, want)
	}
}

func TestEncodeParse(t *testing.T) {
	// S3's example: the CRC32C of "hello tail" as versitygw and MinIO send it.
	if got := Encode(Checksum([]byte("hello tail"))); got != "drH2xg==" {
		t.Fatalf("Encode = %q, want drH2xg==", got)
	}
	v, err := Parse("drH2xg==")
	if err != nil || v != Checksum([]byte("hello tail")) {
		t.Fatalf("Parse = %08x, %v", v, err)
	}
	for _, bad := range []string{"", "drH2", "not base64!", "AAAAAAA="} {
		if _, err := Parse(bad); err == nil {
			t.Errorf("Parse(%q) succeeded", bad)
		}
	}
}

package session

import (
	"crypto/sha256"
	"encoding"
	"encoding/base64"
	"fmt"
	"hash"
	"io"

	"github.com/ferryhq/ferry/internal/crc32c"
	"github.com/ferryhq/ferry/registry"
)

// Whole-file digests. Every session keeps the CRC32C of its bytes: a
// sequential one extends it as each append stores its bytes (runningCRC),
// parallel parts and concatenated pieces combine theirs at completion. A
// SHA-256, asked for at create (Spec.ChecksumAlgorithm), cannot be
// combined, so only sequential sessions keep one: its state is marshalled
// into the record after each append and picked up by whichever instance
// takes the next, and nothing is read back. Expected values given at
// create are compared before storage assembles the file, so a mismatch
// publishes nothing and leaves the old file in place.

// AlgorithmSHA256 asks a session to compute the file's SHA-256 too.
const AlgorithmSHA256 = "sha256"

// runningDigests extend the record's digests by the bytes one write
// stores; end records them once the engine stored exactly n bytes.
type runningDigests struct {
	crc  *uint32   // nil: the session keeps none (from an older ferryd)
	sha  hash.Hash // nil: no SHA-256 asked for
	seen int64
}

func newRunningDigests(rec *record) (*runningDigests, error) {
	d := &runningDigests{}
	if rec.CRC32C != nil {
		d.crc = new(*rec.CRC32C)
	}
	if rec.SHA256State != nil {
		d.sha = sha256.New()
		if err := d.sha.(encoding.BinaryUnmarshaler).UnmarshalBinary(rec.SHA256State); err != nil {
			return nil, fmt.Errorf("session %s: its SHA-256 state: %w", rec.ID, err)
		}
	}
	return d, nil
}

func (d *runningDigests) Write(p []byte) (int, error) {
	if d.crc != nil {
		*d.crc = crc32c.Update(*d.crc, p)
	}
	if d.sha != nil {
		d.sha.Write(p)
	}
	d.seen += int64(len(p))
	return len(p), nil
}

func (d *runningDigests) reader(r io.Reader) io.Reader { return io.TeeReader(r, d) }

// end records the digests in rec; the engine must have read exactly the n
// bytes it stored, or they would be wrong.
func (d *runningDigests) end(rec *record, n int64) error {
	if d.seen != n {
		return fmt.Errorf("session %s: the engine read %d bytes of a %d-byte chunk", rec.ID, d.seen, n)
	}
	rec.CRC32C = d.crc
	if d.sha != nil {
		state, err := d.sha.(encoding.BinaryMarshaler).MarshalBinary()
		if err != nil {
			return err
		}
		rec.SHA256State = state
	}
	return nil
}

func newSHA256State() []byte {
	b, _ := sha256.New().(encoding.BinaryMarshaler).MarshalBinary()
	return b
}

// outOfOrder readies rec's digests for bytes that come as parts or pieces.
// A SHA-256 runs over the bytes in order, so parts that arrive in any order
// can only be hashed by reading the assembled file back, which on S3
// exists only once it has replaced the old one: after publication, too
// late to refuse a file whose SHA-256 the client gave or asked for. Such a
// session refuses parts. One whose SHA-256 the bucket's setting asked for
// gets it read back once the file is published (Service.readBack).
func (r *record) outOfOrder() error {
	switch {
	case r.SHA256State == nil:
		return nil
	case !r.SHA256Late || r.Expect != nil && r.Expect.SHA256 != "":
		return ErrUploadMode.New("session %s computes a SHA-256, which needs its bytes in order: append them, or create the "+
			"session without checksum_algorithm sha256 (every file gets a CRC32C, which parts combine)", r.ID)
	}
	r.SHA256State = nil
	return nil
}

// checksums are the whole file's digests, for a session whose bytes are
// all in (nil before, and for a session from a ferryd that kept none).
func (r *record) checksums() *registry.Checksums {
	if r.State != stateCompleted && r.Offset != r.Size || r.CRC32C == nil {
		return nil
	}
	c := &registry.Checksums{CRC32C: crc32c.Encode(*r.CRC32C)}
	if r.SHA256State != nil {
		h := sha256.New()
		if h.(encoding.BinaryUnmarshaler).UnmarshalBinary(r.SHA256State) == nil {
			c.SHA256 = base64.StdEncoding.EncodeToString(h.Sum(nil))
		}
	}
	return c
}

// checkExpected compares the file's digests with those the client gave at
// create, before anything is published.
func (r *record) checkExpected() error {
	want, got := r.Expect, r.checksums()
	if want == nil {
		return nil
	}
	if got == nil {
		return ErrChecksumMismatch.New("session %s cannot check the checksums given at create: it was started by an older ferryd "+
			"that kept none; abort it and upload again", r.ID)
	}
	for _, c := range []struct{ name, want, got string }{{"crc32c", want.CRC32C, got.CRC32C}, {"sha256", want.SHA256, got.SHA256}} {
		if c.want != "" && c.want != c.got {
			return ErrChecksumMismatch.New("the file's %s is %s, not the %s given at create; nothing was published (an older file "+
				"at %s/%s stays): abort session %s and upload the file again", c.name, c.got, c.want, r.Bucket, r.Key, r.ID).
				With("algorithm", c.name).With("expected", c.want).With("actual", c.got)
		}
	}
	return nil
}

// expect adds whole-file digests an append declares to those the record
// expects; one that contradicts an earlier declaration is refused.
func (a *appender) expect(want *registry.Checksums) error {
	if want == nil || a.probe {
		return nil
	}
	if err := checkDigests(want); err != nil {
		return err
	}
	rec := a.rec
	cur := registry.Checksums{}
	if rec.Expect != nil {
		cur = *rec.Expect
	}
	for _, c := range []struct {
		name      string
		have, new string
		into      *string
	}{{"crc32c", cur.CRC32C, want.CRC32C, &cur.CRC32C}, {"sha256", cur.SHA256, want.SHA256, &cur.SHA256}} {
		switch {
		case c.new == "" || c.new == c.have:
		case c.have != "":
			return ErrInvalidChecksum.New("Repr-Digest declares %s %s, but %s was declared before for session %s", c.name, c.new, c.have, rec.ID)
		case c.name == "sha256" && rec.SHA256State == nil:
			return ErrInvalidChecksum.New("Repr-Digest declares a sha-256, but session %s computes none: create it with checksum_algorithm sha256", rec.ID)
		default:
			*c.into = c.new
		}
	}
	rec.Expect = &cur
	return nil
}

// checkDigests refuses digests that are not base64 of the right length.
func checkDigests(want *registry.Checksums) error {
	if want.CRC32C != "" {
		if _, err := crc32c.Parse(want.CRC32C); err != nil {
			return ErrInvalidChecksum.New("checksums.%v", err)
		}
	}
	if want.SHA256 != "" {
		if b, err := base64.StdEncoding.DecodeString(want.SHA256); err != nil || len(b) != sha256.Size {
			return ErrInvalidChecksum.New("checksums.sha256 %q: want the 32-byte SHA-256 in standard base64 (44 characters)", want.SHA256)
		}
	}
	return nil
}

// expectFrom checks a create's digest options and fills them into rec.
func expectFrom(rec *record, algorithm string, want *registry.Checksums) error {
	switch algorithm {
	case "", "crc32c":
	case AlgorithmSHA256:
		rec.SHA256State = newSHA256State()
	default:
		return ErrInvalidChecksum.New("checksum_algorithm %q: use sha256 (every file gets crc32c anyway), or leave it out", algorithm)
	}
	if want == nil {
		return nil
	}
	if err := checkDigests(want); err != nil {
		return err
	}
	if want.SHA256 != "" {
		rec.SHA256State, _ = sha256.New().(encoding.BinaryMarshaler).MarshalBinary()
	}
	if want.CRC32C != "" || want.SHA256 != "" {
		rec.Expect = &registry.Checksums{CRC32C: want.CRC32C, SHA256: want.SHA256}
	}
	return nil
}

package client

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"sync"
	"sync/atomic"
)

// Part is a parallel part as the server recorded it.
type Part struct {
	Part      int    `json:"part"`
	Bytes     int64  `json:"bytes"`
	CRC32C    string `json:"crc32c"`
	Received  int    `json:"received"`
	PartCount int    `json:"part_count"`
}

// PutPart sends part n of a session, the part's exact bytes, with their
// CRC-32C (body is read twice). It returns the file when this part was the
// last one missing.
func (c *Client) PutPart(ctx context.Context, id string, n int, body io.ReadSeeker, size int64) (Part, *File, error) {
	sum, err := crc32c(body, size)
	if err != nil {
		return Part{}, nil, err
	}
	hdr := http.Header{"Upload-Checksum": {sum}, "Content-Type": {"application/octet-stream"}}
	var out struct { // a Part, or the File once the last part landed
		File
		Part      int    `json:"part"`
		CRC32C    string `json:"crc32c"`
		Received  int    `json:"received"`
		PartCount int    `json:"part_count"`
	}
	path := "/v1/files/session:" + url.PathEscape(id) + "/parts/" + strconv.Itoa(n)
	if _, err := c.do(ctx, http.MethodPut, path, body, size, hdr, &out); err != nil {
		return Part{}, nil, err
	}
	if out.Part != 0 {
		return Part{Part: out.Part, Bytes: out.Bytes, CRC32C: out.CRC32C, Received: out.Received, PartCount: out.PartCount}, nil, nil
	}
	return Part{Part: n, Bytes: size}, &out.File, nil
}

// missingParts lists the parts of s that have not landed.
func missingParts(s Session) []int {
	have := make([]bool, s.PartCount+1)
	for _, r := range s.Parts {
		for n := r[0]; n <= r[1] && n <= s.PartCount; n++ {
			have[n] = true
		}
	}
	var out []int
	for n := 1; n <= s.PartCount; n++ {
		if !have[n] {
			out = append(out, n)
		}
	}
	return out
}

// uploadParts sends the parts s lacks, o.Parallel at once, then completes
// the session if no part's answer brought the file.
func (c *Client) uploadParts(ctx context.Context, r io.ReaderAt, s Session, o UploadOptions) (File, error) {
	missing := missingParts(s)
	var done atomic.Int64
	done.Store(s.Size)
	for _, n := range missing {
		done.Add(-partLen(s, n))
	}
	var mu sync.Mutex
	progress := func(delta int64) {
		if o.Progress == nil {
			return
		}
		mu.Lock() // one caller at a time, in order
		defer mu.Unlock()
		o.Progress(done.Add(delta), s.Size)
	}
	progress(0)
	var file *File
	err := inParallel(ctx, max(o.Parallel, 1), len(missing), func(ctx context.Context, i int) error {
		f, err := c.sendPart(ctx, r, s, missing[i], o, progress)
		if err != nil {
			return err
		}
		if f != nil {
			mu.Lock()
			file = f
			mu.Unlock()
		}
		return nil
	})
	if err != nil {
		return File{}, err
	}
	if file == nil {
		f, err := c.complete(ctx, s.ID, o.Retry)
		if err != nil {
			return File{}, err
		}
		file = &f
	}
	return *file, nil
}

// Landed counts the parts of a parallel session that are in, and their
// bytes.
func (s Session) Landed() (parts int, bytes int64) {
	for _, r := range s.Parts {
		for n := r[0]; n <= r[1] && n <= s.PartCount; n++ {
			parts++
			bytes += partLen(s, n)
		}
	}
	return parts, bytes
}

func partLen(s Session, n int) int64 {
	return min(s.PartSize, s.Size-int64(n-1)*s.PartSize)
}

// sendPart puts part n, retrying as Upload retries a chunk.
func (c *Client) sendPart(ctx context.Context, r io.ReaderAt, s Session, n int, o UploadOptions, progress func(int64)) (*File, error) {
	size := partLen(s, n)
	failures, mismatches := 0, 0
	for {
		body := &countingSection{SectionReader: io.NewSectionReader(r, int64(n-1)*s.PartSize, size), progress: progress}
		_, f, err := c.PutPart(ctx, s.ID, n, body, size)
		if err == nil {
			return f, nil
		}
		progress(-body.finish()) // those bytes go again
		var e *Error
		switch {
		case errors.As(err, &e) && e.Code == "CHECKSUM_MISMATCH" && !e.wholeFileMismatch() && mismatches < maxChecksumResends:
			mismatches++
			continue
		case errors.As(err, &e) && e.Code == "SESSION_COMPLETED":
			progress(size)  // it landed: its answer, which completed the file, was lost
			return nil, nil // complete() fetches the file
		case errors.As(err, &e) && e.Code == "PART_CONFLICT":
			return nil, fmt.Errorf("ferry: part %d of session %s landed before with other bytes: the local file changed since; abort the session and upload again: %w", n, s.ID, err)
		}
		failures++
		if err := o.Retry.sleep(ctx, failures, err); err != nil {
			return nil, err
		}
	}
}

// complete asks a session whose parts are all in for its file: an empty
// append, which completes it or, done already, returns it.
func (c *Client) complete(ctx context.Context, id string, retry Retry) (File, error) {
	for failures := 1; ; failures++ {
		_, f, err := c.Append(ctx, id, 0, nil, 0)
		if err == nil && f != nil {
			return *f, nil
		}
		if err == nil {
			err = fmt.Errorf("ferry: session %s did not complete", id)
		}
		if err := retry.sleep(ctx, failures, err); err != nil {
			return File{}, err
		}
	}
}

// countingSection reports bytes as they are read for sending (the first
// pass, for the checksum, is rewound and not counted). Once its attempt is
// over it reads nothing more: the transport may still be sending a body
// the server answered early, and those bytes must not count.
type countingSection struct {
	*io.SectionReader
	progress func(int64)

	mu       sync.Mutex
	sent     int64
	counting bool
	over     bool
}

var errAttemptOver = errors.New("ferry: the part's attempt is over")

func (c *countingSection) Read(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.over {
		return 0, errAttemptOver
	}
	n, err := c.SectionReader.Read(p)
	if c.counting {
		c.sent += int64(n)
		c.progress(int64(n))
	}
	return n, err
}

func (c *countingSection) Seek(off int64, whence int) (int64, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	pos, err := c.SectionReader.Seek(off, whence)
	c.counting = err == nil && pos == 0 && whence == io.SeekStart // rewound after the checksum: now it is sent
	return pos, err
}

// finish ends the attempt and returns the bytes it counted.
func (c *countingSection) finish() int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.over = true
	return c.sent
}

package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/ferryhq/ferry/client"
)

// Resumption state: one small JSON file per unfinished transfer, named by a
// hash of everything that identifies it, so running the same command again
// finds it. A changed local file (size or mtime) is a different upload.
type state struct {
	Session string `json:"session,omitempty"` // upload
	ETag    string `json:"etag,omitempty"`    // download
	// A parallel download writes ranges out of order, so after a kill only
	// the first Have bytes of DEST.part are known to be whole.
	Ranged bool  `json:"ranged,omitempty"`
	Have   int64 `json:"have,omitempty"`
}

// defaultParallel is --parallel's requests in flight. Four streams get
// past a per-connection cap or a long round trip several times over, while
// a ferryd shared by many clients sees four connections (and S3 part
// uploads) per transfer, not dozens.
const defaultParallel = 4

func (x *cli) stateFlag(fs *flag.FlagSet) *string {
	dir := x.getenv("FERRY_STATE_DIR")
	if dir == "" {
		if cache, err := os.UserCacheDir(); err == nil {
			dir = filepath.Join(cache, "ferry")
		}
	}
	return fs.String("state-dir", dir, "where unfinished transfers are remembered ($FERRY_STATE_DIR)")
}

func statePath(dir string, parts ...string) string {
	sum := sha256.Sum256([]byte(strings.Join(parts, "\n")))
	return filepath.Join(dir, hex.EncodeToString(sum[:16])+".json")
}

func loadState(p string) state {
	var s state
	if b, err := os.ReadFile(p); err == nil {
		_ = json.Unmarshal(b, &s) // a damaged file only loses the resumption
	}
	return s
}

func saveState(p string, s state) error {
	if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
		return err
	}
	b, _ := json.Marshal(s)
	tmp := p + ".tmp"
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, p)
}

func (x *cli) upload(ctx context.Context, args []string) error {
	fs := x.flags("upload", "FILE BUCKET/KEY",
		"Uploads FILE to BUCKET/KEY as parts sent several at once (--parallel), or with --parallel 1 in\nchunks one after another, retrying after network and server errors. Each part or chunk carries its\nCRC-32C; one damaged on the way is read again and resent. If a run stops, run the same command\nagain: it resumes the same session, sending only the parts it lacks.")
	parallel := fs.Int("parallel", defaultParallel, "parts in flight at once, each over its own connection. One connection rarely fills a link\n(a per-connection cap, a long round trip); four get past that several times over, yet keep a\nshared ferryd at four connections per transfer. 1 sends chunks one after another")
	partSize := fs.String("part-size", "", "bytes per part with --parallel above 1 (default: ferryd's, 8MiB, more for files past 78 GiB)")
	chunk := fs.String("chunk-size", "8MiB", "bytes per request with --parallel 1; raised to the server's minimum for the file")
	mimeType := fs.String("mime-type", "", "the file's MIME type (default: ferryd guesses from the key)")
	retries := fs.Int("retries", 10, "failed attempts in a row before giving up")
	quiet := fs.Bool("quiet", false, "no progress bar and no summary")
	stateDir := x.stateFlag(fs)
	if err := parse(fs, args, 2, 2); err != nil {
		return err
	}
	bucket, key, err := bucketKey(fs.Arg(1))
	if err != nil {
		return err
	}
	chunkSize, err := parseSize(*chunk)
	if err != nil {
		return fmt.Errorf("%w: --chunk-size: %v", errUsage, err)
	}
	if *parallel < 1 {
		return fmt.Errorf("%w: --parallel %d: want 1 or more", errUsage, *parallel)
	}
	var parts int64
	if *partSize != "" && *parallel > 1 { // --parallel 1 creates its session exactly as before
		if parts, err = parseSize(*partSize); err != nil {
			return fmt.Errorf("%w: --part-size: %v", errUsage, err)
		}
	}
	f, err := os.Open(fs.Arg(0))
	if err != nil {
		return err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return err
	}
	if !st.Mode().IsRegular() {
		return fmt.Errorf("%s is not a regular file", fs.Arg(0))
	}
	abs, err := filepath.Abs(fs.Arg(0))
	if err != nil {
		return err
	}
	sp := statePath(*stateDir, "upload", x.server, abs, strconv.FormatInt(st.Size(), 10),
		strconv.FormatInt(st.ModTime().UnixNano(), 10), bucket, key)
	saved := loadState(sp)
	bar := newProgress(x.stderr, *quiet)
	opts := client.UploadOptions{MimeType: *mimeType, ChunkSize: chunkSize, Session: saved.Session,
		Parallel: *parallel, PartSize: parts,
		Progress: bar.update, Retry: client.Retry{Attempts: *retries},
		OnSession: func(s client.Session) {
			// A session resumes as it began: in parts if it has any, else
			// in order from its offset (the client decides the same way).
			from := s.Offset
			switch {
			case s.ID != saved.Session:
				if err := saveState(sp, state{Session: s.ID}); err != nil {
					bar.note("cannot remember session %s for a later resume: %v", s.ID, err)
				}
			case s.Parallel:
				var n int
				n, from = s.Landed()
				bar.note("resuming session %s: %d of %d parts already there (%s of %s)", s.ID, n, s.PartCount, bytesText(from), bytesText(s.Size))
			default:
				bar.note("resuming session %s at %s of %s", s.ID, bytesText(s.Offset), bytesText(s.Size))
			}
			bar.begin(from)
		}}
	file, err := x.c.Upload(ctx, f, st.Size(), bucket, key, opts)
	if err != nil && saved.Session != "" && client.IsNotFound(err) {
		bar.note("session %s is gone (expired or aborted); starting over", saved.Session)
		opts.Session = ""
		file, err = x.c.Upload(ctx, f, st.Size(), bucket, key, opts)
	}
	if err != nil {
		bar.abort()
		if _, serr := os.Stat(sp); serr == nil {
			return fmt.Errorf("%w\nrun the same command again to resume", err)
		}
		return err
	}
	_ = os.Remove(sp)
	bar.finish("uploaded", file.Bytes, bucket+"/"+key)
	return x.printJSON(file)
}

func (x *cli) download(ctx context.Context, args []string) error {
	fs := x.flags("download", "BUCKET/KEY [DEST]",
		"Downloads BUCKET/KEY to DEST (default: the key's last path segment; - writes to stdout) as ranges\nfetched several at once (--parallel). Bytes go to DEST.part, renamed to DEST when whole. If a run\nstops, run the same command again: it resumes DEST.part, unless the file changed on the server\nmeanwhile, then it starts over.")
	parallel := fs.Int("parallel", defaultParallel, "ranged requests in flight at once, each over its own connection, for the reasons\nof upload's --parallel; 1 fetches the file over one connection")
	rangeSize := fs.String("part-size", "8MiB", "bytes per ranged request with --parallel above 1")
	retries := fs.Int("retries", 10, "failed attempts in a row before giving up")
	quiet := fs.Bool("quiet", false, "no progress bar and no summary")
	stateDir := x.stateFlag(fs)
	if err := parse(fs, args, 1, 2); err != nil {
		return err
	}
	bucket, key, err := bucketKey(fs.Arg(0))
	if err != nil {
		return err
	}
	if *parallel < 1 {
		return fmt.Errorf("%w: --parallel %d: want 1 or more", errUsage, *parallel)
	}
	ranges, err := parseSize(*rangeSize)
	if err != nil {
		return fmt.Errorf("%w: --part-size: %v", errUsage, err)
	}
	dest := path.Base(key)
	if fs.NArg() == 2 {
		dest = fs.Arg(1)
	}
	if dest == "-" {
		body, err := x.c.Read(ctx, bucket, key)
		if err != nil {
			return err
		}
		defer body.Close()
		_, err = io.Copy(x.stdout, body)
		return err
	}
	if st, err := os.Stat(dest); err == nil && st.IsDir() {
		dest = filepath.Join(dest, path.Base(key))
	}
	abs, err := filepath.Abs(dest)
	if err != nil {
		return err
	}
	sp := statePath(*stateDir, "download", x.server, abs, bucket, key)
	part := dest + ".part"
	out, err := os.OpenFile(part, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return err
	}
	defer out.Close()
	saved := loadState(sp)
	bar := newProgress(x.stderr, *quiet)
	at, _ := out.Seek(0, io.SeekEnd)
	if saved.Ranged {
		at = min(at, saved.Have) // past the prefix there may be gaps
	}
	if at == 0 || saved.ETag == "" {
		at, saved.ETag = 0, "" // nothing to resume: the client starts from 0
	}
	if err := out.Truncate(at); err != nil {
		return err
	}
	ranged := *parallel > 1
	remember := func(s state) {
		s.Ranged = ranged
		if err := saveState(sp, s); err != nil {
			bar.note("cannot remember the download for a later resume: %v", err)
		}
	}
	if saved.ETag != "" && saved.Ranged != ranged {
		remember(state{ETag: saved.ETag, Have: at})
	}
	bar.begin(at)
	// Whether the bytes on disk are kept shows only in the server's answer:
	// a new ETag before any byte means the file changed and the client
	// starts over; a byte after them means it resumed.
	resumed, held, etag := at, at, saved.ETag
	_, err = x.c.Download(ctx, bucket, key, out, client.DownloadOptions{ETag: saved.ETag, Retry: client.Retry{Attempts: *retries},
		Parallel: *parallel, RangeSize: ranges, Have: at,
		OnETag: func(tag string) {
			if held > 0 && etag != "" {
				bar.note("%s/%s changed on the server since %s was written: downloading it again from the start", bucket, key, part)
				bar.begin(0)
			}
			resumed, held, etag = 0, 0, tag
			remember(state{ETag: tag})
		},
		OnHave: func(n int64) { remember(state{ETag: etag, Have: n}) },
		Progress: func(done, total int64) {
			if resumed > 0 && done > resumed {
				bar.note("resuming %s at %s", part, bytesText(resumed))
			}
			resumed, held = 0, done
			bar.update(done, total)
		}})
	if err != nil {
		bar.abort()
		return downloadFailed(err, out, part, sp)
	}
	size, err := out.Seek(0, io.SeekEnd)
	if err == nil {
		err = out.Close()
	}
	if err == nil {
		err = os.Rename(part, dest)
	}
	if err != nil {
		return err
	}
	_ = os.Remove(sp)
	bar.finish("downloaded", size, dest)
	return nil
}

// downloadFailed keeps DEST.part only if it holds bytes a later run can go
// on from, and advises running again only then: a 404 before the first
// byte leaves nothing behind.
func downloadFailed(err error, out *os.File, part, sp string) error {
	size, serr := out.Seek(0, io.SeekEnd)
	_ = out.Close()
	if serr == nil && size == 0 {
		_ = os.Remove(part)
		_ = os.Remove(sp)
		return err
	}
	if client.IsNotFound(err) { // the file is gone: nothing to go on from
		return err
	}
	return fmt.Errorf("%w\nrun the same command again to resume", err)
}

// progress draws a one-line progress bar on a terminal and prints a
// summary at the end (both on stderr; stdout stays for data).
type progress struct {
	w          io.Writer
	quiet, tty bool
	start      time.Time
	from       int64 // bytes already there when this run began
	high       int64 // the most shown: bytes of a failed part sent again were counted once already
	last       time.Time
	drawn      bool
}

func newProgress(w io.Writer, quiet bool) *progress {
	tty := false
	if f, ok := w.(*os.File); ok {
		if st, err := f.Stat(); err == nil {
			tty = st.Mode()&os.ModeCharDevice != 0
		}
	}
	return &progress{w: w, quiet: quiet, tty: tty && !quiet}
}

func (p *progress) begin(from int64) { p.start, p.from, p.high = time.Now(), from, from }

func (p *progress) note(format string, args ...any) {
	if !p.quiet {
		p.clear()
		fmt.Fprintf(p.w, "ferry: "+format+"\n", args...)
	}
}

func (p *progress) update(done, total int64) {
	done = max(done, p.high)
	p.high = done
	if !p.tty || (time.Since(p.last) < 200*time.Millisecond && done < total) {
		return
	}
	p.last = time.Now()
	pct := 100.0
	if total > 0 {
		pct = 100 * float64(done) / float64(total)
	}
	rate := float64(done-p.from) / max(time.Since(p.start).Seconds(), 1e-3)
	line := fmt.Sprintf("%5.1f%%  %s / %s  %s/s", pct, bytesText(done), bytesText(total), bytesText(int64(rate)))
	if rate > 0 && done < total {
		line += "  ETA " + time.Duration(float64(total-done)/rate*float64(time.Second)).Round(time.Second).String()
	}
	fmt.Fprintf(p.w, "\r%-60s", line)
	p.drawn = true
}

func (p *progress) clear() {
	if p.drawn {
		fmt.Fprintf(p.w, "\r%-60s\r", "")
		p.drawn = false
	}
}

func (p *progress) abort() { p.clear() }

func (p *progress) finish(verb string, n int64, what string) {
	p.clear()
	if p.quiet {
		return
	}
	d := time.Since(p.start)
	fmt.Fprintf(p.w, "ferry: %s %s (%s) in %s, %s/s\n", verb, what, bytesText(n), d.Round(time.Millisecond),
		bytesText(int64(float64(n-p.from)/max(d.Seconds(), 1e-3))))
}

// bytesText writes n in binary units.
func bytesText(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	v, i := float64(n), -1
	for v >= unit && i < 4 {
		v /= unit
		i++
	}
	return fmt.Sprintf("%.1f %ciB", v, "KMGTP"[i])
}

// parseSize reads a byte count: 1048576, 512KiB, 8MiB, 1GiB (K, M, G too).
func parseSize(s string) (int64, error) {
	t := strings.TrimSuffix(strings.TrimSuffix(strings.TrimSpace(s), "iB"), "B")
	mult := int64(1)
	if i := len(t) - 1; i > 0 {
		switch t[i] {
		case 'k', 'K':
			mult = 1 << 10
		case 'm', 'M':
			mult = 1 << 20
		case 'g', 'G':
			mult = 1 << 30
		}
		if mult > 1 {
			t = t[:i]
		}
	}
	n, err := strconv.ParseInt(strings.TrimSpace(t), 10, 64)
	if err != nil || n <= 0 || n > (1<<62)/mult {
		return 0, errors.New("want a positive size such as 8MiB, 512KiB or 1048576")
	}
	return n * mult, nil
}

func unixTime(sec int64) string { return time.Unix(sec, 0).UTC().Format("2006-01-02 15:04:05") }

package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"

	"github.com/ferryhq/ferry/client"
)

// downloadArgs is a download's command line, checked.
type downloadArgs struct {
	bucket, key, dest string
	parallel          int
	rangeSize         int64
	retries           int
	quiet             bool
	stateDir          string
}

func (x *cli) parseDownload(args []string) (downloadArgs, error) {
	fs := x.flags("download", "BUCKET/KEY [DEST]",
		"Downloads BUCKET/KEY to DEST (default: the key's last path segment; - writes to stdout) as ranges\nfetched several at once (--parallel). Bytes go to DEST.part, renamed to DEST when whole. If a run\nstops, run the same command again: it resumes DEST.part, unless the file changed on the server\nmeanwhile, then it starts over.")
	parallel := fs.Int("parallel", defaultParallel, "ranged requests in flight at once, each over its own connection, for the reasons\nof upload's --parallel; 1 fetches the file over one connection")
	rangeSize := fs.String("part-size", "8MiB", "bytes per ranged request with --parallel above 1")
	retries := fs.Int("retries", 10, "failed attempts in a row before giving up")
	quiet := fs.Bool("quiet", false, "no progress bar and no summary")
	stateDir := x.stateFlag(fs)
	if err := parse(fs, args, 1, 2); err != nil {
		return downloadArgs{}, err
	}
	bucket, key, err := bucketKey(fs.Arg(0))
	if err != nil {
		return downloadArgs{}, err
	}
	if *parallel < 1 {
		return downloadArgs{}, fmt.Errorf("%w: --parallel %d: want 1 or more", errUsage, *parallel)
	}
	ranges, err := parseSize(*rangeSize)
	if err != nil {
		return downloadArgs{}, fmt.Errorf("%w: --part-size: %v", errUsage, err)
	}
	dest := path.Base(key)
	if fs.NArg() == 2 {
		dest = fs.Arg(1)
	}
	return downloadArgs{bucket: bucket, key: key, dest: dest, parallel: *parallel, rangeSize: ranges,
		retries: *retries, quiet: *quiet, stateDir: *stateDir}, nil
}

func (x *cli) download(ctx context.Context, args []string) error {
	a, err := x.parseDownload(args)
	if err != nil {
		return err
	}
	if a.dest == "-" {
		return x.downloadToStdout(ctx, a.bucket, a.key)
	}
	dest := a.dest
	if st, err := os.Stat(dest); err == nil && st.IsDir() {
		dest = filepath.Join(dest, path.Base(a.key))
	}
	abs, err := filepath.Abs(dest)
	if err != nil {
		return err
	}
	sp := statePath(a.stateDir, "download", x.server, abs, a.bucket, a.key)
	part := dest + ".part"
	out, err := os.OpenFile(part, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return err
	}
	defer out.Close()
	saved := loadState(sp)
	at, err := resumeFrom(out, &saved)
	if err != nil {
		return err
	}
	d := &downloadRun{bar: newProgress(x.stderr, a.quiet), file: a.bucket + "/" + a.key, part: part, sp: sp,
		ranged: a.parallel > 1, resumed: at, held: at, etag: saved.ETag}
	if saved.ETag != "" && saved.Ranged != d.ranged {
		d.remember(state{ETag: saved.ETag, Have: at})
	}
	d.bar.begin(at)
	_, err = x.c.Download(ctx, a.bucket, a.key, out, client.DownloadOptions{ETag: saved.ETag, Retry: client.Retry{Attempts: a.retries},
		Parallel: a.parallel, RangeSize: a.rangeSize, Have: at,
		OnETag: d.onETag, OnHave: d.onHave, Progress: d.progress})
	if err != nil {
		d.bar.abort()
		return downloadFailed(err, out, part, sp)
	}
	return d.finish(out, dest)
}

// downloadToStdout writes the file to stdout, with no resumption.
func (x *cli) downloadToStdout(ctx context.Context, bucket, key string) error {
	body, err := x.c.Read(ctx, bucket, key)
	if err != nil {
		return err
	}
	defer body.Close()
	_, err = io.Copy(x.stdout, body)
	return err
}

// resumeFrom cuts DEST.part to the bytes an earlier run left that saved
// vouches for, and returns their count. With none kept it clears
// saved.ETag.
func resumeFrom(out *os.File, saved *state) (int64, error) {
	at, _ := out.Seek(0, io.SeekEnd)
	if saved.Ranged {
		at = min(at, saved.Have) // past the prefix there may be gaps
	}
	if at == 0 || saved.ETag == "" {
		at, saved.ETag = 0, "" // nothing to resume: the client starts from 0
	}
	return at, out.Truncate(at)
}

// downloadRun follows one download into DEST.part for the progress bar
// and the resumption state at sp.
//
// Whether the bytes on disk are kept shows only in the server's answer:
// a new ETag before any byte means the file changed and the client
// starts over; a byte after them means it resumed.
type downloadRun struct {
	bar           *progress
	file          string // BUCKET/KEY
	part, sp      string
	ranged        bool
	resumed, held int64
	etag          string
}

func (d *downloadRun) remember(s state) {
	s.Ranged = d.ranged
	if err := saveState(d.sp, s); err != nil {
		d.bar.note("cannot remember the download for a later resume: %v", err)
	}
}

func (d *downloadRun) onETag(tag string) {
	if d.held > 0 && d.etag != "" {
		d.bar.note("%s changed on the server since %s was written: downloading it again from the start", d.file, d.part)
		d.bar.begin(0)
	}
	d.resumed, d.held, d.etag = 0, 0, tag
	d.remember(state{ETag: tag})
}

func (d *downloadRun) onHave(n int64) { d.remember(state{ETag: d.etag, Have: n}) }

func (d *downloadRun) progress(done, total int64) {
	if d.resumed > 0 && done > d.resumed {
		d.bar.note("resuming %s at %s", d.part, bytesText(d.resumed))
	}
	d.resumed, d.held = 0, done
	d.bar.update(done, total)
}

// finish renames the whole DEST.part to dest and forgets the resumption.
func (d *downloadRun) finish(out *os.File, dest string) error {
	size, err := out.Seek(0, io.SeekEnd)
	if err == nil {
		err = out.Close()
	}
	if err == nil {
		err = os.Rename(d.part, dest)
	}
	if err != nil {
		return err
	}
	_ = os.Remove(d.sp)
	d.bar.finish("downloaded", size, dest)
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
	if errors.Is(err, client.ErrDigestMismatch) { // resuming cannot mend it: the next run starts over
		_ = os.Remove(sp)
		return fmt.Errorf("%w\n%s is kept for inspection; running the same command again downloads the file anew", err, part)
	}
	return fmt.Errorf("%w\nrun the same command again to resume", err)
}

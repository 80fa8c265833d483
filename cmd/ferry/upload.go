package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"

	"github.com/ferryhq/ferry/client"
)

// uploadArgs is an upload's command line, checked.
type uploadArgs struct {
	file, bucket, key string
	opts              client.UploadOptions // from the flags: no session, no callbacks yet
	quiet             bool
	stateDir          string
}

func (x *cli) parseUpload(args []string) (uploadArgs, error) {
	fs := x.flags("upload", "FILE BUCKET/KEY",
		"Uploads FILE to BUCKET/KEY as parts sent several at once (--parallel), or with --parallel 1 in\nchunks one after another, retrying after network and server errors. Each part or chunk carries its\nCRC-32C; one damaged on the way is read again and resent. If a run stops, run the same command\nagain: it resumes the same session, sending only the parts it lacks.")
	parallel := fs.Int("parallel", defaultParallel, "parts in flight at once, each over its own connection. One connection rarely fills a link\n(a per-connection cap, a long round trip); four get past that several times over, yet keep a\nshared ferryd at four connections per transfer. 1 sends chunks one after another")
	partSize := fs.String("part-size", "", "bytes per part with --parallel above 1 (default: ferryd's, 8MiB, more for files past 78 GiB)")
	chunk := fs.String("chunk-size", "8MiB", "bytes per request with --parallel 1; raised to the server's minimum for the file")
	mimeType := fs.String("mime-type", "", "the file's MIME type (default: ferryd guesses from the key)")
	retries := fs.Int("retries", 10, "failed attempts in a row before giving up")
	verify := fs.Bool("verify", true, "have ferryd publish the file only if it matches the local one: with --parallel 1 the\nSHA-256 (computed here while sending) and CRC32C are declared with the last chunk; with parts the\nCRC32C, read here before the session is created")
	quiet := fs.Bool("quiet", false, "no progress bar and no summary")
	stateDir := x.stateFlag(fs)
	if err := parse(fs, args, 2, 2); err != nil {
		return uploadArgs{}, err
	}
	bucket, key, err := bucketKey(fs.Arg(1))
	if err != nil {
		return uploadArgs{}, err
	}
	chunkSize, err := parseSize(*chunk)
	if err != nil {
		return uploadArgs{}, fmt.Errorf("%w: --chunk-size: %v", errUsage, err)
	}
	if *parallel < 1 {
		return uploadArgs{}, fmt.Errorf("%w: --parallel %d: want 1 or more", errUsage, *parallel)
	}
	var parts int64
	if *partSize != "" && *parallel > 1 { // --parallel 1 creates its session exactly as before
		if parts, err = parseSize(*partSize); err != nil {
			return uploadArgs{}, fmt.Errorf("%w: --part-size: %v", errUsage, err)
		}
	}
	return uploadArgs{file: fs.Arg(0), bucket: bucket, key: key, quiet: *quiet, stateDir: *stateDir,
		opts: client.UploadOptions{MimeType: *mimeType, ChunkSize: chunkSize, Parallel: *parallel, PartSize: parts,
			Retry: client.Retry{Attempts: *retries}, Verify: *verify}}, nil
}

func (x *cli) upload(ctx context.Context, args []string) error {
	a, err := x.parseUpload(args)
	if err != nil {
		return err
	}
	f, st, err := openRegular(a.file)
	if err != nil {
		return err
	}
	defer f.Close()
	abs, err := filepath.Abs(a.file)
	if err != nil {
		return err
	}
	sp := statePath(a.stateDir, "upload", x.server, abs, strconv.FormatInt(st.Size(), 10),
		strconv.FormatInt(st.ModTime().UnixNano(), 10), a.bucket, a.key)
	saved := loadState(sp)
	bar := newProgress(x.stderr, a.quiet)
	opts := a.opts
	opts.Session, opts.Progress, opts.OnSession = saved.Session, bar.update, onUploadSession(sp, saved.Session, bar)
	file, err := x.c.Upload(ctx, f, st.Size(), a.bucket, a.key, opts)
	if err != nil && saved.Session != "" && client.IsNotFound(err) {
		bar.note("session %s is gone (expired or aborted); starting over", saved.Session)
		opts.Session = ""
		file, err = x.c.Upload(ctx, f, st.Size(), a.bucket, a.key, opts)
	}
	if err != nil {
		bar.abort()
		if _, serr := os.Stat(sp); serr == nil {
			return fmt.Errorf("%w\nrun the same command again to resume", err)
		}
		return err
	}
	_ = os.Remove(sp)
	bar.finish("uploaded", file.Bytes, a.bucket+"/"+a.key)
	return x.printJSON(file)
}

// openRegular opens name for reading, refusing anything but a regular file.
func openRegular(name string) (*os.File, os.FileInfo, error) {
	f, err := os.Open(name)
	if err != nil {
		return nil, nil, err
	}
	st, err := f.Stat()
	if err == nil && !st.Mode().IsRegular() {
		err = fmt.Errorf("%s is not a regular file", name)
	}
	if err != nil {
		f.Close()
		return nil, nil, err
	}
	return f, st, nil
}

// onUploadSession is told the session: it remembers a new one at sp for a
// later run, or says how far the saved one got, and starts the bar there.
func onUploadSession(sp, saved string, bar *progress) func(client.Session) {
	return func(s client.Session) {
		// A session resumes as it began: in parts if it has any, else
		// in order from its offset (the client decides the same way).
		from := s.Offset
		switch {
		case s.ID != saved:
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
	}
}

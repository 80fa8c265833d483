package vectorstore

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"sync"
	"time"

	"github.com/ferryhq/ferry/errcode"
	"github.com/ferryhq/ferry/metastore"
	"github.com/ferryhq/ferry/textindex"
)

// Processing. An attach writes the file record in_progress and puts a job
// in the queue index; every ferryd runs VectorWorkers workers that are
// woken on a local attach and otherwise poll the queue. A worker takes the
// job's lock (a lease it keeps refreshing), reads the file through the
// registry, extracts and splits its text, embeds the chunks when an
// embeddings endpoint is configured, and then, under the file's lock,
// stores the chunks and moves the file to completed or failed. The job
// leaves the queue only after that, so a crash or restart at any point
// leaves it to be picked up again; a job whose file was detached, deleted,
// cancelled or re-attached in the meantime ends without writing anything.

type job struct {
	VectorStoreID string `json:"vector_store_id"`
	FileID        string `json:"file_id"`
	Attempts      int    `json:"attempts,omitempty"`
	NotBefore     int64  `json:"not_before,omitempty"` // unix ms; set after a failed attempt
}

const (
	jobLockTTL = time.Minute
	// A job that fails this often for reasons outside the file (storage
	// or the embeddings endpoint down) fails the file with server_error.
	maxAttempts = 3
)

// RunWorkers processes the queue with cfg.VectorWorkers workers until ctx
// ends, then waits for them. With no workers it returns at once: this
// instance then only serves the API, and others do the processing.
func (s *Service) RunWorkers(ctx context.Context) {
	var wg sync.WaitGroup
	for range s.cfg.VectorWorkers {
		wg.Go(func() { s.worker(ctx) })
	}
	wg.Wait()
}

func (s *Service) worker(ctx context.Context) {
	t := time.NewTicker(s.cfg.VectorPollInterval)
	defer t.Stop()
	for {
		for ctx.Err() == nil {
			ran, err := s.ProcessNext(ctx)
			if err != nil && ctx.Err() == nil {
				s.log.WarnContext(ctx, "vector_store_job_failed", "err", err)
			}
			if !ran {
				break
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-s.wakeup:
		case <-t.C:
		}
	}
}

// wake tells the local workers there is work, without waiting.
func (s *Service) wake() {
	for range cap(s.wakeup) {
		select {
		case s.wakeup <- struct{}{}:
		default:
		}
	}
}

// ProcessNext claims one due job that no one else holds and runs it. It
// reports false when there was none.
func (s *Service) ProcessNext(ctx context.Context) (bool, error) {
	q := metastore.Query{Limit: 50}
	now := s.now().UnixMilli()
	for {
		entries, more, err := s.store.IndexList(ctx, jobsIndex, q)
		if err != nil {
			return false, err
		}
		for _, e := range entries {
			var j job
			if err := json.Unmarshal(e.Value, &j); err != nil {
				s.log.WarnContext(ctx, "vector_store_job_undecodable", "job", e.Member, "err", err)
				_ = s.store.IndexDelete(ctx, jobsIndex, e.Member)
				continue
			}
			if j.NotBefore > now {
				continue
			}
			// Losing the lease cancels the job's context: it stops, and
			// whoever holds the lease next takes the job up.
			ran := false
			err := metastore.WithLock(ctx, s.store, jobLockName(e.Member), metastore.LockOptions{TTL: jobLockTTL},
				func(h metastore.Held) error {
					ran = true
					return s.runJob(h.Ctx, e.Member, j)
				})
			if !ran {
				if errors.Is(err, metastore.ErrLocked) {
					continue
				}
				return false, err
			}
			return true, err
		}
		if !more || len(entries) == 0 {
			return false, nil
		}
		q.After = entries[len(entries)-1].Member
	}
}

// result is what processing a file produced: chunks, or why it failed.
type result struct {
	texts   []string
	dims    int
	vectors []float32
	fail    *LastError
}

// runJob runs under the job's lease; ctx ends if the lease is lost.
func (s *Service) runJob(ctx context.Context, id string, j job) error {
	rec, _, err := s.loadFile(ctx, j.VectorStoreID, j.FileID)
	if errcode.Is(err, ErrVectorStoreFileAbsent) || err == nil && (rec.Job != id || rec.Status != StatusInProgress) {
		return s.store.IndexDelete(ctx, jobsIndex, id) // detached, cancelled or re-attached: nothing to do
	}
	if err != nil {
		return err
	}
	start := time.Now()
	res, err := s.process(ctx, rec)
	if err != nil {
		if ctx.Err() != nil {
			return err // shutting down or lost the lease: someone tries again
		}
		j.Attempts++
		if j.Attempts < maxAttempts {
			j.NotBefore = s.now().Add(time.Duration(j.Attempts) * 2 * s.cfg.VectorPollInterval).UnixMilli()
			v, _ := json.Marshal(j)
			if perr := s.store.IndexPut(ctx, jobsIndex, id, v); perr != nil {
				return perr
			}
			return fmt.Errorf("processing %s in %s (attempt %d of %d): %w", j.FileID, j.VectorStoreID, j.Attempts, maxAttempts, err)
		}
		s.log.WarnContext(ctx, "vector_store_file_failed", "vector_store", j.VectorStoreID, "file", j.FileID, "err", err)
		res = result{fail: &LastError{Code: "server_error", Message: err.Error()}}
	}
	if err := s.finish(ctx, rec, id, res); err != nil {
		return err
	}
	s.vm.processing.Observe(time.Since(start).Seconds())
	return s.store.IndexDelete(ctx, jobsIndex, id)
}

// process turns the file into chunks. An error is worth retrying (storage
// or the embeddings endpoint); a problem with the file itself is a result
// with fail set.
func (s *Service) process(ctx context.Context, rec fileRecord) (result, error) {
	invalid := func(format string, args ...any) (result, error) {
		return result{fail: &LastError{Code: "invalid_file", Message: fmt.Sprintf(format, args...)}}, nil
	}
	f, filename, err := s.files.LiveFile(ctx, rec.ID)
	if notFound(err) {
		return invalid("file %s no longer exists", rec.ID)
	}
	if err != nil {
		return result{}, err
	}
	limit := s.cfg.VectorMaxFileSize
	tooLarge := func(n int64) (result, error) {
		return invalid("the file is %d bytes or more; vector stores index files of up to %d bytes (openai.vector_max_file_size)", n, limit)
	}
	if f.Bytes > limit {
		return tooLarge(f.Bytes)
	}
	body, err := s.files.OpenFile(ctx, f)
	if err != nil {
		return result{}, err
	}
	data, err := io.ReadAll(io.LimitReader(body, limit+1))
	body.Close()
	if err != nil {
		return result{}, err
	}
	if int64(len(data)) > limit {
		return tooLarge(int64(len(data)))
	}
	text, err := textindex.Extract(filename, f.MimeType, data)
	if errors.Is(err, textindex.ErrUnsupported) {
		return result{fail: &LastError{Code: "unsupported_file", Message: err.Error()}}, nil
	}
	if err != nil {
		return invalid("%v", err)
	}
	chunks := textindex.Split(text, Chunking{MaxTokens: rec.MaxTokens, OverlapTokens: rec.OverlapTokens}.strategy())
	if len(chunks) == 0 {
		return invalid("the file has no text to index")
	}
	res := result{texts: chunks}
	if s.embed != nil {
		vecs, err := s.embed.embed(ctx, chunks)
		if err != nil {
			return result{}, err
		}
		res.dims = len(vecs[0])
		res.vectors = make([]float32, 0, len(vecs)*res.dims)
		for _, v := range vecs {
			res.vectors = append(res.vectors, v...)
		}
	}
	return res, nil
}

// usage is the storage a file's chunks take: the bytes of their text, plus
// four bytes per vector dimension when they have embeddings.
func (r result) usage() int64 {
	var n int64
	for _, t := range r.texts {
		n += int64(len(t))
	}
	return n + 4*int64(len(r.vectors))
}

// finish stores the result, under the file's lock, if the file is still
// the one this job was for.
func (s *Service) finish(ctx context.Context, rec fileRecord, jobID string, res result) error {
	vs, file := rec.VectorStoreID, rec.ID
	var done *fileRecord
	err := s.withFileLock(ctx, vs, file, func(ctx context.Context) error {
		cur, ver, err := s.loadFile(ctx, vs, file)
		if errcode.Is(err, ErrVectorStoreFileAbsent) || err == nil && (cur.Job != jobID || cur.Status != StatusInProgress) {
			return nil
		}
		if err != nil {
			return err
		}
		next := cur
		if res.fail != nil {
			next.Status, next.LastError = StatusFailed, res.fail
		} else {
			c := chunksRecord{Job: jobID, Texts: res.texts, Dims: res.dims, Vectors: encodeVectors(res.vectors)}
			if _, err := metastore.PutJSON(ctx, s.store, chunksKey(vs, file), c, metastore.Cond{Version: metastore.AnyVersion}); err != nil {
				return err
			}
			next.Status, next.UsageBytes = StatusCompleted, res.usage()
		}
		if err := s.reindex(ctx, &cur, &next); err != nil {
			return err
		}
		if err := s.refreshStore(ctx, vs); err != nil {
			return err
		}
		if err := s.putFile(ctx, next, ver); err != nil {
			return err
		}
		done = &next
		return nil
	})
	if err == nil && done != nil {
		if done.Status == StatusFailed {
			s.vm.failed(done.LastError.Code)
		} else {
			s.vm.files.WithLabelValues("completed").Inc()
		}
	}
	return err
}

func encodeVectors(v []float32) []byte {
	if len(v) == 0 {
		return nil
	}
	b := make([]byte, 4*len(v))
	for i, x := range v {
		binary.LittleEndian.PutUint32(b[4*i:], math.Float32bits(x))
	}
	return b
}

// decodeVectors splits the stored floats into n vectors, or nil if there
// are none or they do not fit.
func decodeVectors(b []byte, n, dims int) [][]float32 {
	if dims <= 0 || len(b) != 4*n*dims {
		return nil
	}
	out := make([][]float32, n)
	flat := make([]float32, n*dims)
	for i := range flat {
		flat[i] = math.Float32frombits(binary.LittleEndian.Uint32(b[4*i:]))
	}
	for i := range out {
		out[i] = flat[i*dims : (i+1)*dims : (i+1)*dims]
	}
	return out
}

package openai

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"io"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/ferryhq/ferry/bucket"
	"github.com/ferryhq/ferry/internal/testsvc"
	"github.com/ferryhq/ferry/metrics"
	"github.com/ferryhq/ferry/session"
)

const MiB = 1 << 20

// blobOps counts the blob calls by operation.
func blobOps(t testing.TB, reg *prometheus.Registry) map[string]float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]float64{}
	for _, mf := range mfs {
		if mf.GetName() != "ferry_blob_operations_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "operation" && m.GetCounter().GetValue() > 0 {
					out[l.GetValue()] += m.GetCounter().GetValue()
				}
			}
		}
	}
	return out
}

func diffOps(before, after map[string]float64) map[string]float64 {
	out := map[string]float64{}
	for k, v := range after {
		if d := v - before[k]; d != 0 {
			out[k] = d
		}
	}
	return out
}

// On S3, Upload parts of 5 MiB or more become parts of the file's
// multipart upload by UploadPartCopy at complete: no byte of them is read
// or sent again by ferryd.
func TestCompleteCopiesPartsInStorage(t *testing.T) {
	s := testsvc.Open(t, "redis+s3", testsvc.StoreOptions{})
	reg := prometheus.NewRegistry()
	f := newFixture(t, s.Meta, metrics.Backend(bucket.Compose(s.Blobs), "s3", reg))
	ctx := context.Background()
	parts := [][]byte{randomData(t, 6*MiB), randomData(t, 7*MiB), randomData(t, 5*MiB+1)}
	up, err := f.svc.CreateUpload(ctx, UploadParams{Filename: "big.jsonl", Purpose: "batch", Bytes: 18*MiB + 1, MimeType: "text/jsonl"})
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	var all []byte
	for i := len(parts) - 1; i >= 0; i-- { // added in reverse, listed in order
		p, err := f.svc.AddPart(ctx, up.ID, bytes.NewReader(parts[i]))
		if err != nil {
			t.Fatal(err)
		}
		ids = append([]string{p.ID}, ids...)
	}
	for _, p := range parts {
		all = append(all, p...)
	}
	before := blobOps(t, reg)
	done, err := f.svc.CompleteUpload(ctx, up.ID, ids, "")
	if err != nil {
		t.Fatal(err)
	}
	got := diffOps(before, blobOps(t, reg))
	if got["copy_part"] != 3 || got["upload_part"] != 0 || got["get"] != 0 {
		t.Fatalf("blob calls of the complete: %v; want 3 copy_part and no upload_part or get", got)
	}
	_, file, err := f.svc.GetFile(ctx, done.File.ID)
	if err != nil {
		t.Fatal(err)
	}
	rc, _, err := f.files.Open(ctx, file, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	if b, _ := io.ReadAll(rc); !bytes.Equal(b, all) {
		t.Fatal("the completed file is not its parts in order")
	}
	noPartsLeft(t, f, up.ID)
}

func randomData(t testing.TB, n int) []byte {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return b
}

// BenchmarkCompleteUpload compares completing an Upload of four 16 MiB
// parts two ways, side by side on Redis + S3: parts kept as pieces and
// joined in storage (UploadPartCopy; what AddPart stores now) and parts
// kept as files and streamed through ferryd into the new file (how parts
// were stored before pieces; still completed so after an upgrade).
//
//	CI=1 scripts/test.sh -run '^$' -bench BenchmarkCompleteUpload -benchtime 4x ./openai/
func BenchmarkCompleteUpload(b *testing.B) {
	s := testsvc.Open(b, "redis+s3", testsvc.StoreOptions{})
	f := newFixture(b, s.Meta, bucket.Compose(s.Blobs))
	ctx := context.Background()
	const parts, size = 4, 16 * MiB
	data := randomData(b, size)
	var took [2]time.Duration
	for i := 0; b.Loop(); i++ {
		for way := range 2 {
			up, err := f.svc.CreateUpload(ctx, UploadParams{Filename: "b.bin", Purpose: "batch", Bytes: parts * size, MimeType: "application/octet-stream"})
			if err != nil {
				b.Fatal(err)
			}
			var ids []string
			for n := range parts {
				var p Part
				if way == 0 {
					p, err = f.svc.AddPart(ctx, up.ID, bytes.NewReader(data))
				} else {
					p, err = legacyPart(ctx, f, up.ID, fmt.Sprintf("part_%d_%d", i, n), data)
				}
				if err != nil {
					b.Fatal(err)
				}
				ids = append(ids, p.ID)
			}
			start := time.Now()
			if _, err := f.svc.CompleteUpload(ctx, up.ID, ids, ""); err != nil {
				b.Fatal(err)
			}
			took[way] += time.Since(start)
		}
	}
	b.ReportMetric(float64(took[0].Milliseconds())/float64(b.N), "pieces_ms/complete")
	b.ReportMetric(float64(took[1].Milliseconds())/float64(b.N), "files_ms/complete")
	b.ReportMetric(float64(took[1])/float64(took[0]), "files/pieces")
}

// legacyPart stores a part as a file in the uploads bucket, as AddPart did
// before parts were pieces.
func legacyPart(ctx context.Context, f *fixture, uploadID, partID string, data []byte) (Part, error) {
	key := uploadID + "/" + partID
	sid, _, err := f.svc.sessions.Ingest(ctx, session.Spec{Bucket: f.svc.cfg.UploadsBucket, Key: key, Protocol: session.ProtocolOpenAI},
		bytes.NewReader(data), int64(len(data)))
	if err != nil {
		return Part{}, err
	}
	if _, err := f.svc.sessions.Seal(ctx, sid, nil); err != nil {
		return Part{}, err
	}
	v, _ := json.Marshal(partRecord{Size: int64(len(data)), Key: key})
	return Part{ID: partID}, f.store.IndexPut(ctx, partsIndex(uploadID), partID, v)
}

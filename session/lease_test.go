package session

import (
	"bytes"
	"context"
	"log/slog"
	"testing"
	"time"

	"github.com/ferryhq/ferry/bucket"
	"github.com/ferryhq/ferry/errcode"
	"github.com/ferryhq/ferry/internal/faults"
	"github.com/ferryhq/ferry/internal/testsvc"
	"github.com/ferryhq/ferry/metastore"
	"github.com/ferryhq/ferry/registry"
)

// A request whose lease runs out under it (here: every refresh fails while
// its write is stalled) is told to come back, 503, not handed a 500; the
// session still takes the bytes afterwards.
func TestLeaseLostIsUnavailable(t *testing.T) {
	meta, fs := testsvc.Embedded(t)
	in := faults.New()
	store, blobs := faults.Store(meta, in), faults.Backend(bucket.Compose(fs), in)
	places := registry.NewResolver(store, blobs, registry.Locations{})
	svc, err := New(store, places, registry.New(store, places), Config{LockTTL: 300 * time.Millisecond}, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	s, err := svc.Create(ctx, "b", "k", "", 10)
	if err != nil {
		t.Fatal(err)
	}
	data := []byte("0123456789")
	in.Arm(faults.Fault{N: 1, Match: faults.KindIs(faults.KindBlob), Mode: faults.Stall})
	end := in.FailWhile(faults.Methods("Refresh"), metastore.ErrLockLost)
	_, _, err = svc.Append(ctx, s.ID, Chunk{Offset: 0, Total: -1, Len: 10, Body: bytes.NewReader(data)})
	end()
	in.Disarm()
	if e := errcode.From(err); e.Code != errcode.ErrUnavailable {
		t.Fatalf("append whose lease ran out: %v (code %s), want UNAVAILABLE", err, e.Code.Value)
	}
	info, err := svc.Get(ctx, s.ID)
	if err != nil {
		t.Fatal(err)
	}
	if _, file, err := svc.Append(ctx, s.ID, Chunk{Offset: info.Offset, Total: -1, Len: 10 - info.Offset, Body: bytes.NewReader(data[info.Offset:])}); err != nil || file == nil || file.Bytes != 10 {
		t.Fatalf("resume after the lost lease: %v, %v", file, err)
	}
}

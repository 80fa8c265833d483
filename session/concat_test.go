package session

import (
	"bytes"
	"context"
	"maps"
	"slices"
	"testing"
	"time"

	"github.com/ferryhq/ferry/bucket"
	"github.com/ferryhq/ferry/errcode"
)

// uploadPiece sends data as a whole Partial session and returns its id.
func uploadPiece(t *testing.T, f *fixture, data []byte) string {
	t.Helper()
	in, err := f.svc.CreateSpec(context.Background(), Spec{Bucket: "b", Key: "piece", Size: int64(len(data)), Partial: true})
	if err != nil {
		t.Fatal(err)
	}
	got, file, err := appendBytes(t, f, in.ID, 0, data)
	if err != nil || !got.Completed || !got.Partial {
		t.Fatalf("piece: %+v, %v", got, err)
	}
	if _, err := f.files.Get(context.Background(), file.Bucket, file.Key); err == nil {
		t.Fatal("a piece was published as a file")
	}
	return in.ID
}

// Pieces of every size join into one file, byte-exact: on S3 the large
// runs by UploadPartCopy, small pieces gathered into parts of at least
// 5 MiB. The pieces are gone afterwards, and a repeat returns the file.
func TestConcatJoinsPieces(t *testing.T) {
	eachStore(t, func(t *testing.T, f *fixture) {
		ctx := context.Background()
		sizes := []int{6 * MiB, 2 * MiB, 1 * MiB, 7 * MiB, 3 * MiB}
		var all []byte
		var ids []string
		for _, n := range sizes {
			data := randomBytes(n)
			all = append(all, data...)
			ids = append(ids, uploadPiece(t, f, data))
		}
		final, err := f.svc.Create(ctx, "b", "joined.bin", "", int64(len(all)))
		if err != nil {
			t.Fatal(err)
		}
		var before map[string]int
		if f.s3 != nil {
			before = f.s3.snapshot()
		}
		in, file, err := f.svc.Concat(ctx, final.ID, ids)
		if err != nil {
			t.Fatal(err)
		}
		if !in.Completed || len(in.Pieces) != len(ids) || file.Bytes != int64(len(all)) {
			t.Fatalf("concat: %+v, file %+v", in, file)
		}
		if f.s3 != nil {
			// 6 MiB copied; 2+1 MiB gathered and topped up with 2 MiB of the
			// 7 MiB piece (read: 3 GetObject), whose other 5 MiB are copied,
			// and the last 3 MiB copied too; then one HeadObject checks the
			// completed object. Nothing is aborted: the pieces were whole.
			got := diff(before, f.s3.snapshot())
			want := map[string]int{"CreateMultipartUpload": 1, "UploadPartCopy": 3, "GetObject": 3, "UploadPart": 1,
				"CompleteMultipartUpload": 1, "HeadObject": 1}
			if !maps.Equal(got, want) {
				t.Errorf("S3 requests of the concatenation: %v, want %v", got, want)
			}
		}
		if !bytes.Equal(readAll(t, f, file), all) {
			t.Fatal("the joined file is not the pieces' bytes in order")
		}
		wantCRC(t, f, file, all)
		for _, id := range ids {
			if _, err := f.svc.Get(ctx, id); !errcode.Is(err, ErrNotFound) {
				t.Errorf("piece %s after the concatenation: %v", id, err)
			}
			if _, err := f.blobs.Backend.Head(ctx, ".pieces/"+id); err == nil {
				t.Errorf("piece %s's object is left", id)
			}
		}
		if _, again, err := f.svc.Concat(ctx, final.ID, ids); err != nil || again.ETag != file.ETag {
			t.Fatalf("concat again: %+v %v", again, err)
		}
	})
}

// A concatenation of pieces that are not whole, not pieces, or not the
// session's size changes nothing.
func TestConcatRefusesBadPieces(t *testing.T) {
	eachStore(t, func(t *testing.T, f *fixture) {
		ctx := context.Background()
		whole := uploadPiece(t, f, randomBytes(MiB))
		half, err := f.svc.CreateSpec(ctx, Spec{Bucket: "b", Key: "half", Size: 2 * MiB, Partial: true})
		if err != nil {
			t.Fatal(err)
		}
		if _, _, err := appendBytes(t, f, half.ID, 0, randomBytes(MiB)); err != nil {
			t.Fatal(err)
		}
		plain, err := f.svc.Create(ctx, "b", "plain", "", MiB)
		if err != nil {
			t.Fatal(err)
		}
		final, err := f.svc.Create(ctx, "b", "final", "", 2*MiB)
		if err != nil {
			t.Fatal(err)
		}
		for _, c := range []struct {
			ids  []string
			want errcode.Code
		}{
			{[]string{whole, half.ID}, errcode.ErrConflict},
			{[]string{whole, plain.ID}, errcode.ErrInvalidRequest},
			{[]string{whole}, ErrInvalidSize},
			{nil, errcode.ErrInvalidRequest},
		} {
			if _, _, err := f.svc.Concat(ctx, final.ID, c.ids); !errcode.Is(err, c.want) {
				t.Errorf("concat of %v: %v, want %s", c.ids, err, c.want.Value)
			}
		}
		if got, err := f.svc.Get(ctx, whole); err != nil || !got.Completed {
			t.Fatalf("a refused concatenation touched its piece: %+v %v", got, err)
		}
	})
}

// A piece nobody joined is freed when it expires, object and all.
func TestUnjoinedPieceExpires(t *testing.T) {
	eachStore(t, func(t *testing.T, f *fixture) {
		ctx := context.Background()
		id := uploadPiece(t, f, randomBytes(6*MiB))
		if _, err := f.blobs.Backend.Head(ctx, ".pieces/"+id); err != nil {
			t.Fatalf("the whole piece is not in storage: %v", err)
		}
		f.clock.advance(2 * time.Hour)
		if n, err := f.svc.Purge(ctx); err != nil || n != 1 {
			t.Fatalf("purge freed %d (%v)", n, err)
		}
		if _, err := f.blobs.Backend.Head(ctx, ".pieces/"+id); err == nil {
			t.Fatal("the expired piece's object is left")
		}
		if mp := f.blobs.Multipart; mp != nil {
			if ups, _ := mp.ListMultipart(ctx, ""); len(ups) != 0 {
				t.Fatalf("multipart uploads left: %v", ups)
			}
		}
	})
}

// planParts keeps every part but the last at S3's minimum, copies what it
// can, and covers the pieces' bytes exactly, in order.
func TestPlanParts(t *testing.T) {
	type want struct {
		n      int64
		copied bool
	}
	const G = 1 << 30
	for _, c := range []struct {
		sizes []int64
		local bool
		want  []want
	}{
		{[]int64{6 * MiB, 2 * MiB, MiB, 7 * MiB, 3 * MiB}, true, []want{{6 * MiB, true}, {5 * MiB, false}, {5 * MiB, true}, {3 * MiB, true}}},
		{[]int64{MiB, MiB, MiB}, true, []want{{3 * MiB, false}}},
		{[]int64{3 * MiB, 10 * MiB}, true, []want{{5 * MiB, false}, {8 * MiB, true}}},
		{[]int64{3 * MiB, 6 * MiB, MiB}, true, []want{{5 * MiB, false}, {5 * MiB, false}}},
		{[]int64{6 * G}, true, []want{{3 * G, true}, {3 * G, true}}},
		{[]int64{6 * MiB, 2 * MiB}, false, []want{{6 * MiB, false}, {2 * MiB, false}}},
		{[]int64{0, 5 * MiB, 0}, true, []want{{5 * MiB, true}}},
	} {
		var pieces []piece
		var total int64
		for _, n := range c.sizes {
			pieces = append(pieces, piece{size: n, local: c.local})
			total += n
		}
		plan := planParts(pieces, true)
		var got []want
		var sum int64
		for i, p := range plan {
			got = append(got, want{p.n, p.copied})
			var segs int64
			for _, g := range p.segs {
				segs += g.n
			}
			if segs != p.n || p.copied && len(p.segs) != 1 {
				t.Errorf("%v: part %d of %d bytes has segments of %d (%d of them)", c.sizes, i+1, p.n, segs, len(p.segs))
			}
			if i < len(plan)-1 && p.n < bucket.MinPartSize {
				t.Errorf("%v: part %d of %d bytes is under the minimum", c.sizes, i+1, p.n)
			}
			sum += p.n
		}
		if !slices.Equal(got, c.want) || sum != total {
			t.Errorf("planParts(%v) = %v (%d bytes), want %v (%d)", c.sizes, got, sum, c.want, total)
		}
	}
}

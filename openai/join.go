package openai

import (
	"context"
	"crypto/md5"
	"encoding/hex"
	"fmt"
	"hash"
	"io"
	"strings"

	"github.com/ferryhq/ferry/bucket"
	"github.com/ferryhq/ferry/errcode"
	"github.com/ferryhq/ferry/metastore/due"
	"github.com/ferryhq/ferry/registry"
	"github.com/ferryhq/ferry/session"
)

// join makes the file of the parts, in order: pieces are joined in storage
// (session.Concat), parts stored as files before pieces existed are read
// and appended. The MD5, when given, is checked before anything is
// published.
func (s *Service) join(ctx context.Context, rec uploadRecord, parts []partRecord, md5hex string) (FileObject, error) {
	fileID := registry.NewFileID(s.now())
	attrs := map[string]string{attrFilename: rec.Filename, attrPurpose: rec.Purpose}
	if rec.Owner != "" {
		attrs[attrOwner] = rec.Owner
	}
	if rec.ExpiresAfter > 0 {
		attrs[attrExpiresAfter] = fmt.Sprint(rec.ExpiresAfter)
	}
	sp := session.Spec{Bucket: s.cfg.Bucket, Key: fileID + "/" + bucket.SafeName(rec.Filename),
		MimeType: rec.MimeType, Size: rec.Bytes, FileID: fileID, Protocol: session.ProtocolOpenAI, Attrs: attrs}
	var (
		f   registry.File
		err error
	)
	if pieces := pieceIDs(parts); pieces != nil {
		f, err = s.joinPieces(ctx, sp, pieces, md5hex)
	} else {
		f, err = s.joinFiles(ctx, sp, parts, md5hex)
	}
	if err != nil {
		return FileObject{}, err
	}
	if exp := expiresAt(f); !exp.IsZero() {
		if err := s.store.IndexPut(ctx, expiryIndex, due.Member(exp, f.ID), nil); err != nil {
			return FileObject{}, err
		}
	}
	return toObject(f), nil
}

// pieceIDs lists the parts' piece sessions; nil unless every part is one.
func pieceIDs(parts []partRecord) []string {
	ids := make([]string, len(parts))
	for i, p := range parts {
		if p.Session == "" {
			return nil
		}
		ids[i] = p.Session
	}
	if len(ids) == 0 {
		return nil
	}
	return ids
}

// joinPieces joins piece sessions in storage. An MD5 to check costs one
// read of the pieces first.
func (s *Service) joinPieces(ctx context.Context, sp session.Spec, pieces []string, md5hex string) (registry.File, error) {
	if md5hex != "" {
		sum := md5.New()
		for _, id := range pieces {
			body, err := s.sessions.OpenPiece(ctx, id)
			if err != nil {
				return registry.File{}, err
			}
			_, err = io.Copy(sum, body)
			body.Close()
			if err != nil {
				return registry.File{}, err
			}
		}
		if err := md5Matches(md5hex, sum); err != nil {
			return registry.File{}, err
		}
	}
	in, err := s.sessions.CreateSpec(ctx, sp)
	if err != nil {
		return registry.File{}, err
	}
	_, f, err := s.sessions.Concat(ctx, in.ID, pieces)
	if err != nil {
		_ = s.sessions.Abort(context.WithoutCancel(ctx), in.ID)
	}
	return f, err
}

// joinFiles streams parts stored as files into a new open session, checks
// the MD5, and only then seals it.
func (s *Service) joinFiles(ctx context.Context, sp session.Spec, parts []partRecord, md5hex string) (registry.File, error) {
	sp.Open = true
	in, err := s.sessions.CreateSpec(ctx, sp)
	if err != nil {
		return registry.File{}, err
	}
	fail := func(err error) (registry.File, error) {
		_ = s.sessions.Abort(context.WithoutCancel(ctx), in.ID)
		return registry.File{}, err
	}
	sum := md5.New()
	var off int64
	for _, p := range parts {
		f, err := s.files.Get(ctx, s.cfg.UploadsBucket, p.Key)
		if err != nil {
			return fail(err)
		}
		body, _, err := s.files.Open(ctx, f, nil)
		if err != nil {
			return fail(err)
		}
		_, _, err = s.sessions.Append(ctx, in.ID, session.Chunk{Offset: off, Total: -1, Len: p.Size, Body: io.TeeReader(body, sum)})
		body.Close()
		if err != nil {
			return fail(err)
		}
		off += p.Size
	}
	if md5hex != "" {
		if err := md5Matches(md5hex, sum); err != nil {
			return fail(err)
		}
	}
	return s.sessions.Seal(ctx, in.ID, nil)
}

func md5Matches(md5hex string, sum hash.Hash) error {
	if !strings.EqualFold(md5hex, hex.EncodeToString(sum.Sum(nil))) {
		return errcode.ErrInvalidRequest.New("md5 %s does not match the joined parts (%x); nothing was stored", md5hex, sum.Sum(nil))
	}
	return nil
}

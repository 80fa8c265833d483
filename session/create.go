package session

import (
	"context"
	"fmt"
	"mime"
	"path"
	"strings"

	"github.com/ferryhq/ferry/events"

	"github.com/ferryhq/ferry/bucket"
	"github.com/ferryhq/ferry/errcode"
	"github.com/ferryhq/ferry/registry"
)

// Spec describes a new session.
type Spec struct {
	Bucket, Key, MimeType string
	Size                  int64
	// Open makes Size an upper bound: the session completes only when Seal
	// fixes its real size.
	Open   bool
	Attrs  map[string]string // carried onto the published file
	FileID string            // the published file's id; minted on publish when empty
	// ID is the session's id when the caller minted it (NewID), for a key
	// that names the upload; empty: a new one.
	ID string
	// Protocol is the API the session is created through (ProtocolTus,
	// ProtocolOpenAI; empty: native), the label of its metrics.
	Protocol string
	Meta     map[string]string // the protocol's own data, kept, never published
	// PartSize is the size of parallel parts the client asks for; 0 takes
	// the default (DefaultPartSize, or more for files that need it).
	PartSize int64
	// Partial makes the session a piece of a file that Concat makes: its
	// bytes go to Ferry's own storage and are never published themselves.
	Partial bool
	// ChecksumAlgorithm "sha256" computes the file's SHA-256 besides the
	// CRC32C every file gets (sequential appends only). Checksums are the
	// values the file must have: completion publishes nothing else.
	ChecksumAlgorithm string
	Checksums         *registry.Checksums
}

// Create starts a session for bucket/key. An existing file at bucket/key
// stays untouched until the new one completes, then is replaced whole.
func (s *Service) Create(ctx context.Context, bkt, key, mimeType string, size int64) (Info, error) {
	return s.CreateSpec(ctx, Spec{Bucket: bkt, Key: key, MimeType: mimeType, Size: size})
}

// CreateSpec is Create with every option.
func (s *Service) CreateSpec(ctx context.Context, sp Spec) (Info, error) {
	sp, partSize, err := s.check(sp)
	if err != nil {
		return Info{}, err
	}
	bkt, key, mimeType, size := sp.Bucket, sp.Key, sp.MimeType, sp.Size

	id := sp.ID
	if id == "" {
		id = NewID()
	} else if !validID(id) {
		return Info{}, errcode.ErrInvalidRequest.New("%q is not a session id (32 hex digits)", id)
	}
	location, object, err := s.placeOf(ctx, sp, id)
	if err != nil {
		return Info{}, err
	}
	eng, err := s.engine(location)
	if err != nil {
		return Info{}, err
	}
	now := s.now().UTC()
	rec := &record{ID: id, Bucket: bkt, Key: key, MimeType: mimeType, Size: size, CRC32C: new(uint32(0)),
		State: stateUploading, CreatedAt: now, ExpiresAt: now.Add(s.cfg.TTL), Open: sp.Open, Attrs: sp.Attrs, FileID: sp.FileID,
		Location: location, Object: object, Protocol: sp.Protocol, Meta: sp.Meta, PartSize: partSize, Partial: sp.Partial}
	if rec.FileID == "" && !rec.Partial {
		// Minted now, so a completion retried after its publication
		// committed publishes the same file again, not a second one.
		rec.FileID = registry.NewFileID(now)
	}
	if err := expectFrom(rec, sp.ChecksumAlgorithm, sp.Checksums); err != nil {
		return Info{}, err
	}
	if rec.SHA256State == nil && !rec.Partial && s.cfg.bucketSHA256(bkt) {
		rec.SHA256State, rec.SHA256Late = newSHA256State(), true
	}
	if err := eng.begin(ctx, rec); err != nil {
		return Info{}, storageErr(rec, fmt.Errorf("begin upload: %w", err))
	}
	// The purger's entry goes first: if the record write fails, the purger
	// still removes what was written.
	if err := s.fileExpiry(ctx, eng, rec, rec.ExpiresAt); err != nil {
		return Info{}, err
	}
	if _, err := s.save(ctx, rec, 0, 0, rec.event(events.SessionCreated)); err != nil {
		return Info{}, err
	}
	s.m.created.WithLabelValues(protocolLabel(rec.Protocol)).Inc()
	return rec.info(), nil
}

// Check refuses a spec CreateSpec would refuse, without creating anything,
// and returns it as CreateSpec would create it (its MIME type settled):
// what a pre-create hook is asked about, so the hook is never asked about
// a create that would fail anyway.
func (s *Service) Check(sp Spec) (Spec, error) {
	sp, _, err := s.check(sp)
	return sp, err
}

// check is Check, with the part size the session gets.
func (s *Service) check(sp Spec) (Spec, int64, error) {
	if err := bucket.ValidateBucketName(sp.Bucket); err != nil {
		return sp, 0, ErrInvalidBucket.New("%v", err)
	}
	if err := bucket.ValidateKey(sp.Key); err != nil {
		return sp, 0, ErrInvalidKey.New("%v", err)
	}
	switch {
	case sp.Size < 0:
		return sp, 0, ErrInvalidSize.New("size %d is negative: give the file's exact size in bytes", sp.Size)
	case sp.Size > s.cfg.MaxSize:
		return sp, 0, ErrTooLarge.New("size %d exceeds this server's limit of %d bytes", sp.Size, s.cfg.MaxSize).With("max_size", s.cfg.MaxSize)
	}
	mimeType, err := mediaType(sp.MimeType, sp.Key)
	if err != nil {
		return sp, 0, err
	}
	sp.MimeType = mimeType
	partSize, err := partSizeFor(sp.Size, sp.PartSize)
	if err != nil {
		return sp, 0, err
	}
	if err := expectFrom(&record{}, sp.ChecksumAlgorithm, sp.Checksums); err != nil {
		return sp, 0, err
	}
	return sp, partSize, nil
}

// placeOf is where a new session's bytes go: its bucket's place, or for a
// piece, Ferry's own storage under a name no bucket's object can have
// (bucket names have no '.').
func (s *Service) placeOf(ctx context.Context, sp Spec, id string) (location, object string, err error) {
	if sp.Partial {
		return "", ".pieces/" + id, nil
	}
	place, err := s.places.Place(ctx, sp.Bucket)
	if err != nil {
		return "", "", err
	}
	return place.Location, place.Object(sp.Key), nil
}

// Get returns the session's state; for a parallel session, with the parts
// that landed.
func (s *Service) Get(ctx context.Context, id string) (Info, error) {
	rec, _, err := s.load(ctx, id)
	if err != nil {
		return Info{}, err
	}
	in := rec.info()
	return in, s.received(ctx, rec, &in)
}

// Peek returns the session's record as Get does, without the parts that
// landed: one metadata read, for checking an upload link before the
// request it carries. Past expires_at it returns the info with ErrExpired.
func (s *Service) Peek(ctx context.Context, id string) (Info, error) {
	rec, _, err := s.load(ctx, id)
	if rec == nil {
		return Info{}, err
	}
	return rec.info(), err
}

// extraTypes are common extensions that Go's table lacks, so the guess
// does not depend on the machine's /etc/mime.types.
var extraTypes = map[string]string{
	".txt": "text/plain; charset=utf-8", ".csv": "text/csv; charset=utf-8", ".md": "text/markdown; charset=utf-8",
	".log": "text/plain; charset=utf-8", ".jsonl": "application/jsonl", ".parquet": "application/vnd.apache.parquet",
	".zip": "application/zip", ".gz": "application/gzip", ".tar": "application/x-tar", ".zst": "application/zstd",
	".mp4": "video/mp4", ".mp3": "audio/mpeg", ".wav": "audio/wav", ".mkv": "video/x-matroska",
}

// mediaType checks a client's MIME type, or guesses one from the key's
// extension when none was given.
func mediaType(mimeType, key string) (string, error) {
	if mimeType != "" {
		if _, _, err := mime.ParseMediaType(mimeType); err != nil {
			return "", errcode.ErrInvalidRequest.New("mime_type %q is not a media type like text/plain: %v", mimeType, err)
		}
		return mimeType, nil
	}
	ext := strings.ToLower(path.Ext(key))
	if t := mime.TypeByExtension(ext); t != "" {
		return t, nil
	}
	if t, ok := extraTypes[ext]; ok {
		return t, nil
	}
	return defaultMime, nil
}

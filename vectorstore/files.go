package vectorstore

import (
	"context"
	"encoding/json"
	"errors"
	"strings"

	"github.com/ferryhq/ferry/errcode"
	"github.com/ferryhq/ferry/metastore"
	"github.com/ferryhq/ferry/openai/page"
	"github.com/ferryhq/ferry/textindex"
)

// Chunking is a validated chunking strategy; the zero value is auto.
type Chunking struct {
	MaxTokens, OverlapTokens int
}

func (c Chunking) strategy() textindex.Strategy {
	if c.MaxTokens == 0 {
		return textindex.Auto()
	}
	return textindex.Strategy{MaxTokens: c.MaxTokens, OverlapTokens: c.OverlapTokens}
}

// ParseChunking reads a chunking_strategy: absent or {"type":"auto"}, or
// {"type":"static","static":{"max_chunk_size_tokens","chunk_overlap_tokens"}}.
func ParseChunking(raw json.RawMessage) (Chunking, error) {
	if len(raw) == 0 || string(raw) == "null" {
		return Chunking{}, nil
	}
	var req struct {
		Type   string `json:"type"`
		Static *struct {
			Max     *int `json:"max_chunk_size_tokens"`
			Overlap *int `json:"chunk_overlap_tokens"`
		} `json:"static"`
	}
	if err := json.Unmarshal(raw, &req); err != nil {
		return Chunking{}, errcode.ErrInvalidRequest.New("chunking_strategy must be {\"type\":\"auto\"} or {\"type\":\"static\",\"static\":{\"max_chunk_size_tokens\":N,\"chunk_overlap_tokens\":M}}: %v", err)
	}
	switch req.Type {
	case "auto":
		return Chunking{}, nil
	case "static":
		if req.Static == nil || req.Static.Max == nil || req.Static.Overlap == nil {
			return Chunking{}, errcode.ErrInvalidRequest.New("chunking_strategy.static needs max_chunk_size_tokens and chunk_overlap_tokens")
		}
		c := Chunking{MaxTokens: *req.Static.Max, OverlapTokens: *req.Static.Overlap}
		// Not c.strategy(): that reads max 0 as auto, and a static 0 is an error.
		if err := (textindex.Strategy{MaxTokens: c.MaxTokens, OverlapTokens: c.OverlapTokens}).Validate(); err != nil {
			return Chunking{}, errcode.ErrInvalidRequest.New("chunking_strategy.static: %v", err)
		}
		return c, nil
	}
	return Chunking{}, errcode.ErrInvalidRequest.New("chunking_strategy.type %q is not supported; use auto or static", req.Type)
}

// ValidateAttributes applies OpenAI's attribute rules: at most 16 keys of up
// to 64 characters, values strings of up to 512 characters, numbers or
// booleans.
func ValidateAttributes(attrs map[string]any) error {
	if err := textindex.ValidateAttributes(attrs); err != nil {
		return errcode.ErrInvalidRequest.New("attributes: %v", err)
	}
	return nil
}

// LastError says why processing failed.
type LastError struct {
	Code    string `json:"code"` // server_error, unsupported_file or invalid_file
	Message string `json:"message"`
}

// ChunkingObject is how a file's strategy is shown: always static, so auto
// shows as its 800/400 tokens, as OpenAI does.
type ChunkingObject struct {
	Type   string `json:"type"`
	Static struct {
		MaxChunkSizeTokens int `json:"max_chunk_size_tokens"`
		ChunkOverlapTokens int `json:"chunk_overlap_tokens"`
	} `json:"static"`
}

// VectorStoreFile is OpenAI's VectorStoreFileObject as Llama Stack's
// OpenAPI reference for the vector store files routes gives it, field for
// field; last_error is null while there is none, as OpenAI sends it.
type VectorStoreFile struct {
	ID               string         `json:"id"`
	Object           string         `json:"object"`
	Attributes       map[string]any `json:"attributes"`
	ChunkingStrategy ChunkingObject `json:"chunking_strategy"`
	CreatedAt        int64          `json:"created_at"`
	LastError        *LastError     `json:"last_error"`
	Status           string         `json:"status"`
	UsageBytes       int64          `json:"usage_bytes"`
	VectorStoreID    string         `json:"vector_store_id"`
}

type fileRecord struct {
	ID            string         `json:"id"`
	VectorStoreID string         `json:"vector_store_id"`
	CreatedAt     int64          `json:"created_at"`
	Order         string         `json:"order"`
	Status        string         `json:"status"`
	Attributes    map[string]any `json:"attributes,omitempty"`
	MaxTokens     int            `json:"max_tokens"`
	OverlapTokens int            `json:"overlap_tokens"`
	LastError     *LastError     `json:"last_error,omitempty"`
	UsageBytes    int64          `json:"usage_bytes"`
	Job           string         `json:"job,omitempty"`   // the processing job of this attach
	Batch         string         `json:"batch,omitempty"` // the batch it was attached by
	Filename      string         `json:"filename,omitempty"`
}

func (r fileRecord) object() VectorStoreFile {
	o := VectorStoreFile{ID: r.ID, Object: "vector_store.file", Attributes: r.Attributes, CreatedAt: r.CreatedAt,
		LastError: r.LastError, Status: r.Status, UsageBytes: r.UsageBytes, VectorStoreID: r.VectorStoreID}
	if o.Attributes == nil {
		o.Attributes = map[string]any{}
	}
	st := Chunking{MaxTokens: r.MaxTokens, OverlapTokens: r.OverlapTokens}.strategy()
	o.ChunkingStrategy.Type = "static"
	o.ChunkingStrategy.Static.MaxChunkSizeTokens = st.MaxTokens
	o.ChunkingStrategy.Static.ChunkOverlapTokens = st.OverlapTokens
	return o
}

// fileSummary is the value of a status index member: what search and the
// usage sum need without reading every file record.
type fileSummary struct {
	FileID     string         `json:"file_id"`
	Filename   string         `json:"filename,omitempty"`
	UsageBytes int64          `json:"usage_bytes"`
	Attributes map[string]any `json:"attributes,omitempty"`
	Job        string         `json:"job,omitempty"`
}

func (r fileRecord) summary() []byte {
	v, _ := json.Marshal(fileSummary{FileID: r.ID, Filename: r.Filename, UsageBytes: r.UsageBytes, Attributes: r.Attributes, Job: r.Job})
	return v
}

// collections are the store and, if any, the batch the file is listed in.
func (r fileRecord) collections() []string {
	c := []string{storeKey(r.VectorStoreID)}
	if r.Batch != "" {
		c = append(c, batchKey(r.VectorStoreID, r.Batch))
	}
	return c
}

// fileOfMember is the file id in an index member "<order>/<file id>".
func fileOfMember(m string) string {
	_, id, _ := strings.Cut(m, "/")
	return id
}

// chunksRecord holds a completed file's chunks: the texts, and when
// embeddings are configured their vectors as little-endian float32s.
type chunksRecord struct {
	Job     string   `json:"job"`
	Texts   []string `json:"texts"`
	Dims    int      `json:"dims,omitempty"`
	Vectors []byte   `json:"vectors,omitempty"`
}

func (s *Service) loadFile(ctx context.Context, vs, file string) (fileRecord, int64, error) {
	rec, ver, err := metastore.GetJSON[fileRecord](ctx, s.store, fileKey(vs, file))
	if errors.Is(err, metastore.ErrNotFound) {
		return fileRecord{}, 0, ErrVectorStoreFileAbsent.New("no file %q in vector store %s", file, vs)
	}
	return rec, ver, err
}

func (s *Service) putFile(ctx context.Context, rec fileRecord, ver int64) error {
	_, err := metastore.PutJSON(ctx, s.store, fileKey(rec.VectorStoreID, rec.ID), rec, metastore.Cond{Version: ver})
	return err
}

// GetVectorStoreFile returns a file of a store.
func (s *Service) GetVectorStoreFile(ctx context.Context, vs, file string) (VectorStoreFile, error) {
	if _, _, err := s.loadStore(ctx, vs); err != nil {
		return VectorStoreFile{}, err
	}
	rec, _, err := s.loadFile(ctx, vs, file)
	if err != nil {
		return VectorStoreFile{}, err
	}
	return rec.object(), nil
}

// ListVectorStoreFiles pages a store's files in attach order.
func (s *Service) ListVectorStoreFiles(ctx context.Context, vs string, p PageParams) (page.List[VectorStoreFile], error) {
	if _, _, err := s.loadStore(ctx, vs); err != nil {
		return page.List[VectorStoreFile]{}, err
	}
	return s.listFiles(ctx, vs, "", p)
}

// listFiles pages a collection. Cursors are file ids; each maps to its
// member through the file record, so it must still be in the collection.
func (s *Service) listFiles(ctx context.Context, vs, batch string, p PageParams) (page.List[VectorStoreFile], error) {
	coll := storeKey(vs)
	if batch != "" {
		coll = batchKey(vs, batch)
	}
	index := filesIndexOf(coll)
	if p.Filter != "" {
		index = statusIndex(coll, p.Filter)
	}
	cursor := func(name, id string) (string, error) {
		if id == "" {
			return "", nil
		}
		rec, _, err := s.loadFile(ctx, vs, id)
		if err == nil && (batch == "" || rec.Batch == batch) {
			return rec.Order, nil
		}
		if err != nil && !errcode.Is(err, ErrVectorStoreFileAbsent) {
			return "", err
		}
		return "", errcode.ErrInvalidRequest.New("%s %q is not a file of this list; pass the id of a file it returned", name, id)
	}
	after, err := cursor("after", p.After)
	if err != nil {
		return page.List[VectorStoreFile]{}, err
	}
	before, err := cursor("before", p.Before)
	if err != nil {
		return page.List[VectorStoreFile]{}, err
	}
	entries, more, err := s.store.IndexList(ctx, index, metastore.Query{After: after, Before: before, Limit: p.Limit, Desc: p.Desc})
	if err != nil {
		return page.List[VectorStoreFile]{}, err
	}
	data := make([]VectorStoreFile, 0, len(entries))
	for _, e := range entries {
		rec, _, err := s.loadFile(ctx, vs, fileOfMember(e.Member))
		if errcode.Is(err, ErrVectorStoreFileAbsent) {
			continue // detached meanwhile
		}
		if err != nil {
			return page.List[VectorStoreFile]{}, err
		}
		if p.Filter != "" && rec.Status != p.Filter {
			continue // the record moved on since the index was read
		}
		data = append(data, rec.object())
	}
	return page.New(data, more, func(f VectorStoreFile) string { return f.ID }), nil
}

// ContentPage is a file's content as its chunks.
type ContentPage struct {
	Object   string        `json:"object"`
	Data     []TextContent `json:"data"`
	HasMore  bool          `json:"has_more"`
	NextPage *string       `json:"next_page"`
}

// TextContent is one text part.
type TextContent struct {
	Type string `json:"type"`
	Text string `json:"text"`
}

// VectorStoreFileContent returns a completed file's chunks, in order.
func (s *Service) VectorStoreFileContent(ctx context.Context, vs, file string) (ContentPage, error) {
	if _, _, err := s.loadStore(ctx, vs); err != nil {
		return ContentPage{}, err
	}
	rec, _, err := s.loadFile(ctx, vs, file)
	if err != nil {
		return ContentPage{}, err
	}
	if rec.Status != StatusCompleted {
		return ContentPage{}, errcode.ErrInvalidRequest.New("file %s is %s; its content is there once it is completed", file, rec.Status)
	}
	chunks, err := s.loadChunks(ctx, vs, file)
	if err != nil {
		return ContentPage{}, err
	}
	page := ContentPage{Object: "vector_store.file_content.page", Data: make([]TextContent, len(chunks.Texts))}
	for i, t := range chunks.Texts {
		page.Data[i] = TextContent{Type: "text", Text: t}
	}
	return page, nil
}

func (s *Service) loadChunks(ctx context.Context, vs, file string) (chunksRecord, error) {
	c, _, err := metastore.GetJSON[chunksRecord](ctx, s.store, chunksKey(vs, file))
	if errors.Is(err, metastore.ErrNotFound) {
		return chunksRecord{}, ErrVectorStoreFileAbsent.New("file %s in vector store %s has no chunks", file, vs)
	}
	return c, err
}

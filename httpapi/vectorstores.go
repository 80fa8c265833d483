package httpapi

import (
	"encoding/json"
	"net/http"
	"net/url"

	"github.com/gorilla/mux"

	"github.com/ferryhq/ferry/errcode"
	"github.com/ferryhq/ferry/vectorstore"
)

// The vector store routes, mounted under each OpenAI prefix. Path
// variables are named as in Llama Stack's OpenAPI for these routes.
func (o *openAI) vectorStoreRoutes(sub *mux.Router) {
	const vs = "/vector_stores/{vector_store_id}"
	g := o.guard
	sub.Handle("/vector_stores", g.with(openAIWrite, o.createVectorStore)).Methods(http.MethodPost)
	sub.Handle("/vector_stores", g.with(openAIRead, o.listVectorStores)).Methods(http.MethodGet)
	sub.Handle(vs, g.with(openAIRead, o.getVectorStore)).Methods(http.MethodGet)
	sub.Handle(vs, g.with(openAIWrite, o.updateVectorStore)).Methods(http.MethodPost)
	sub.Handle(vs, g.with(openAIWrite, o.deleteVectorStore)).Methods(http.MethodDelete)
	sub.Handle(vs+"/search", g.with(openAIRead, o.searchVectorStore)).Methods(http.MethodPost)
	sub.Handle(vs+"/files", g.with(openAIWrite, o.attachVectorStoreFile)).Methods(http.MethodPost)
	sub.Handle(vs+"/files", g.with(openAIRead, o.listVectorStoreFiles)).Methods(http.MethodGet)
	sub.Handle(vs+"/files/{file_id}", g.with(openAIRead, o.getVectorStoreFile)).Methods(http.MethodGet)
	sub.Handle(vs+"/files/{file_id}", g.with(openAIWrite, o.updateVectorStoreFile)).Methods(http.MethodPost)
	sub.Handle(vs+"/files/{file_id}", g.with(openAIWrite, o.deleteVectorStoreFile)).Methods(http.MethodDelete)
	sub.Handle(vs+"/files/{file_id}/content", g.with(openAIRead, o.vectorStoreFileContent)).Methods(http.MethodGet)
	sub.Handle(vs+"/file_batches", g.with(openAIWrite, o.createFileBatch)).Methods(http.MethodPost)
	sub.Handle(vs+"/file_batches/{batch_id}", g.with(openAIRead, o.getFileBatch)).Methods(http.MethodGet)
	sub.Handle(vs+"/file_batches/{batch_id}/files", g.with(openAIRead, o.listFileBatchFiles)).Methods(http.MethodGet)
	sub.Handle(vs+"/file_batches/{batch_id}/cancel", g.with(openAIWrite, o.cancelFileBatch)).Methods(http.MethodPost)
}

// respond writes v, or err in the OpenAI envelope.
func respond(w http.ResponseWriter, r *http.Request, v any, err error) {
	if err != nil {
		writeOpenAIError(w, r, err)
		return
	}
	writeJSON(w, r, http.StatusOK, v)
}

// cursorPage reads limit (1-100, default 20), order (default desc), after,
// before and, where allowed, filter (a file status).
func cursorPage(q url.Values, withFilter bool) (vectorstore.PageParams, error) {
	p := vectorstore.PageParams{After: q.Get("after"), Before: q.Get("before")}
	var err error
	if p.Limit, p.Desc, err = limitOrder(q, 20, 100); err != nil {
		return p, err
	}
	if f := q.Get("filter"); f != "" {
		switch {
		case !withFilter:
			return p, errcode.ErrInvalidRequest.New("filter is not supported here")
		case f == vectorstore.StatusInProgress, f == vectorstore.StatusCompleted, f == vectorstore.StatusFailed, f == vectorstore.StatusCancelled:
			p.Filter = f
		default:
			return p, errcode.ErrInvalidRequest.New("filter %q must be in_progress, completed, failed or cancelled", f)
		}
	}
	return p, nil
}

// present reports whether a JSON field was sent, null included.
func present(raw json.RawMessage) bool { return len(raw) > 0 }

func isNull(raw json.RawMessage) bool { return string(raw) == "null" }

func (o *openAI) createVectorStore(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Name             *string                   `json:"name"`
		Metadata         map[string]string         `json:"metadata"`
		ExpiresAfter     *vectorstore.ExpiresAfter `json:"expires_after"`
		FileIDs          []string                  `json:"file_ids"`
		ChunkingStrategy json.RawMessage           `json:"chunking_strategy"`
	}
	if err := decodeOpenAIJSON(w, r, &req); err != nil {
		writeOpenAIError(w, r, err)
		return
	}
	ch, err := vectorstore.ParseChunking(req.ChunkingStrategy)
	if err != nil {
		writeOpenAIError(w, r, err)
		return
	}
	v, err := o.vs.CreateVectorStore(r.Context(), vectorstore.StoreParams{Name: req.Name, Metadata: req.Metadata,
		ExpiresAfter: req.ExpiresAfter, FileIDs: req.FileIDs, Chunking: ch})
	respond(w, r, v, err)
}

func (o *openAI) listVectorStores(w http.ResponseWriter, r *http.Request) {
	p, err := cursorPage(r.URL.Query(), false)
	if err != nil {
		writeOpenAIError(w, r, err)
		return
	}
	page, err := o.vs.ListVectorStores(r.Context(), p)
	respond(w, r, page, err)
}

func (o *openAI) getVectorStore(w http.ResponseWriter, r *http.Request) {
	v, err := o.vs.GetVectorStore(r.Context(), mux.Vars(r)["vector_store_id"])
	respond(w, r, v, err)
}

func (o *openAI) updateVectorStore(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Name         *string         `json:"name"`
		Metadata     json.RawMessage `json:"metadata"`
		ExpiresAfter json.RawMessage `json:"expires_after"`
	}
	if err := decodeOpenAIJSON(w, r, &req); err != nil {
		writeOpenAIError(w, r, err)
		return
	}
	p := vectorstore.StoreParams{Name: req.Name, SetMetadata: present(req.Metadata), SetExpiry: present(req.ExpiresAfter)}
	if p.SetMetadata && !isNull(req.Metadata) {
		if err := json.Unmarshal(req.Metadata, &p.Metadata); err != nil {
			writeOpenAIError(w, r, errcode.ErrInvalidRequest.New("metadata must be an object of strings: %v", err))
			return
		}
	}
	if p.SetExpiry && !isNull(req.ExpiresAfter) {
		if err := json.Unmarshal(req.ExpiresAfter, &p.ExpiresAfter); err != nil {
			writeOpenAIError(w, r, errcode.ErrInvalidRequest.New("expires_after must be {\"anchor\":\"last_active_at\",\"days\":N}: %v", err))
			return
		}
	}
	v, err := o.vs.UpdateVectorStore(r.Context(), mux.Vars(r)["vector_store_id"], p)
	respond(w, r, v, err)
}

func (o *openAI) deleteVectorStore(w http.ResponseWriter, r *http.Request) {
	id := mux.Vars(r)["vector_store_id"]
	err := o.vs.DeleteVectorStore(r.Context(), id)
	respond(w, r, map[string]any{"id": id, "object": "vector_store.deleted", "deleted": true}, err)
}

func (o *openAI) searchVectorStore(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Query          json.RawMessage `json:"query"`
		MaxNumResults  *int            `json:"max_num_results"`
		Filters        json.RawMessage `json:"filters"`
		RankingOptions *struct {
			Ranker         string   `json:"ranker"`
			ScoreThreshold *float64 `json:"score_threshold"`
		} `json:"ranking_options"`
		RewriteQuery bool   `json:"rewrite_query"` // accepted; queries are searched as sent
		SearchMode   string `json:"search_mode"`
	}
	if err := decodeOpenAIJSON(w, r, &req); err != nil {
		writeOpenAIError(w, r, err)
		return
	}
	p := vectorstore.SearchParams{Filters: req.Filters, Mode: req.SearchMode}
	if present(req.Query) && !isNull(req.Query) {
		var one string
		if err := json.Unmarshal(req.Query, &one); err == nil {
			p.Query = []string{one}
		} else if err := json.Unmarshal(req.Query, &p.Query); err != nil {
			writeOpenAIError(w, r, errcode.ErrInvalidRequest.New("query must be a string or a list of strings"))
			return
		}
	}
	if req.MaxNumResults != nil {
		if *req.MaxNumResults < 1 || *req.MaxNumResults > 50 {
			writeOpenAIError(w, r, errcode.ErrInvalidRequest.New("max_num_results %d must be from 1 to 50", *req.MaxNumResults))
			return
		}
		p.MaxNumResults = *req.MaxNumResults
	}
	if ro := req.RankingOptions; ro != nil {
		p.Ranker = ro.Ranker
		if ro.ScoreThreshold != nil {
			p.ScoreThreshold = *ro.ScoreThreshold
		}
	}
	page, err := o.vs.SearchVectorStore(r.Context(), mux.Vars(r)["vector_store_id"], p)
	respond(w, r, page, err)
}

// attachRequest is one file to attach, alone or in a batch's files.
type attachRequest struct {
	FileID           string          `json:"file_id"`
	Attributes       map[string]any  `json:"attributes"`
	ChunkingStrategy json.RawMessage `json:"chunking_strategy"`
}

func (a attachRequest) params() (vectorstore.AttachParams, error) {
	ch, err := vectorstore.ParseChunking(a.ChunkingStrategy)
	return vectorstore.AttachParams{FileID: a.FileID, Attributes: a.Attributes, Chunking: ch}, err
}

func (o *openAI) attachVectorStoreFile(w http.ResponseWriter, r *http.Request) {
	var req attachRequest
	if err := decodeOpenAIJSON(w, r, &req); err != nil {
		writeOpenAIError(w, r, err)
		return
	}
	p, err := req.params()
	if err != nil {
		writeOpenAIError(w, r, err)
		return
	}
	f, err := o.vs.AttachFile(r.Context(), mux.Vars(r)["vector_store_id"], p)
	respond(w, r, f, err)
}

func (o *openAI) listVectorStoreFiles(w http.ResponseWriter, r *http.Request) {
	p, err := cursorPage(r.URL.Query(), true)
	if err != nil {
		writeOpenAIError(w, r, err)
		return
	}
	page, err := o.vs.ListVectorStoreFiles(r.Context(), mux.Vars(r)["vector_store_id"], p)
	respond(w, r, page, err)
}

func (o *openAI) getVectorStoreFile(w http.ResponseWriter, r *http.Request) {
	v := mux.Vars(r)
	f, err := o.vs.GetVectorStoreFile(r.Context(), v["vector_store_id"], v["file_id"])
	respond(w, r, f, err)
}

func (o *openAI) updateVectorStoreFile(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Attributes json.RawMessage `json:"attributes"`
	}
	if err := decodeOpenAIJSON(w, r, &req); err != nil {
		writeOpenAIError(w, r, err)
		return
	}
	if !present(req.Attributes) {
		writeOpenAIError(w, r, errcode.ErrInvalidRequest.New("attributes is required (null or {} clears them)"))
		return
	}
	var attrs map[string]any
	if err := json.Unmarshal(req.Attributes, &attrs); err != nil {
		writeOpenAIError(w, r, errcode.ErrInvalidRequest.New("attributes must be an object: %v", err))
		return
	}
	v := mux.Vars(r)
	f, err := o.vs.UpdateVectorStoreFile(r.Context(), v["vector_store_id"], v["file_id"], attrs)
	respond(w, r, f, err)
}

func (o *openAI) deleteVectorStoreFile(w http.ResponseWriter, r *http.Request) {
	v := mux.Vars(r)
	err := o.vs.DeleteVectorStoreFile(r.Context(), v["vector_store_id"], v["file_id"])
	respond(w, r, map[string]any{"id": v["file_id"], "object": "vector_store.file.deleted", "deleted": true}, err)
}

func (o *openAI) vectorStoreFileContent(w http.ResponseWriter, r *http.Request) {
	v := mux.Vars(r)
	page, err := o.vs.VectorStoreFileContent(r.Context(), v["vector_store_id"], v["file_id"])
	respond(w, r, page, err)
}

func (o *openAI) createFileBatch(w http.ResponseWriter, r *http.Request) {
	var req struct {
		FileIDs          []string        `json:"file_ids"`
		Files            []attachRequest `json:"files"`
		Attributes       map[string]any  `json:"attributes"`
		ChunkingStrategy json.RawMessage `json:"chunking_strategy"`
	}
	if err := decodeOpenAIJSON(w, r, &req); err != nil {
		writeOpenAIError(w, r, err)
		return
	}
	if len(req.FileIDs) > 0 && len(req.Files) > 0 {
		writeOpenAIError(w, r, errcode.ErrInvalidRequest.New("send file_ids or files, not both"))
		return
	}
	ch, err := vectorstore.ParseChunking(req.ChunkingStrategy)
	if err != nil {
		writeOpenAIError(w, r, err)
		return
	}
	files := make([]vectorstore.AttachParams, 0, len(req.FileIDs)+len(req.Files))
	for _, id := range req.FileIDs {
		files = append(files, vectorstore.AttachParams{FileID: id, Attributes: req.Attributes, Chunking: ch})
	}
	for _, f := range req.Files {
		p, err := f.params()
		if err != nil {
			writeOpenAIError(w, r, err)
			return
		}
		if f.Attributes == nil {
			p.Attributes = req.Attributes
		}
		if !present(f.ChunkingStrategy) {
			p.Chunking = ch
		}
		files = append(files, p)
	}
	b, err := o.vs.CreateFileBatch(r.Context(), mux.Vars(r)["vector_store_id"], files)
	respond(w, r, b, err)
}

func (o *openAI) getFileBatch(w http.ResponseWriter, r *http.Request) {
	v := mux.Vars(r)
	b, err := o.vs.GetFileBatch(r.Context(), v["vector_store_id"], v["batch_id"])
	respond(w, r, b, err)
}

func (o *openAI) listFileBatchFiles(w http.ResponseWriter, r *http.Request) {
	p, err := cursorPage(r.URL.Query(), true)
	if err != nil {
		writeOpenAIError(w, r, err)
		return
	}
	v := mux.Vars(r)
	page, err := o.vs.ListFileBatchFiles(r.Context(), v["vector_store_id"], v["batch_id"], p)
	respond(w, r, page, err)
}

func (o *openAI) cancelFileBatch(w http.ResponseWriter, r *http.Request) {
	v := mux.Vars(r)
	b, err := o.vs.CancelFileBatch(r.Context(), v["vector_store_id"], v["batch_id"])
	respond(w, r, b, err)
}

package httpapi

import (
	"net/http"
	"strings"

	"github.com/gorilla/mux"
	"github.com/rs/cors"

	"github.com/ferryhq/ferry/auth"
	"github.com/ferryhq/ferry/errcode"
	"github.com/ferryhq/ferry/session"
)

var (
	errUnauthenticated = errcode.Register("UNAUTHENTICATED", "Unauthorized", http.StatusUnauthorized, errcode.OpenAICode("invalid_api_key"))
	errForbidden       = errcode.Register("FORBIDDEN", "Forbidden", http.StatusForbidden)
)

// authenticate runs a request with a valid bearer key as that key's caller.
// A wrong key is refused here; a missing one is left to each route's
// policy, since health checks need none. Without a keyring everything is
// open and no request has a caller.
func authenticate(keys *auth.Keyring, next http.Handler) http.Handler {
	if keys == nil {
		return next
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := r.Header.Get("Authorization")
		if h == "" {
			next.ServeHTTP(w, r)
			return
		}
		scheme, secret, _ := strings.Cut(h, " ")
		if !strings.EqualFold(scheme, "Bearer") || secret == "" {
			unauthenticated(w, r, "the Authorization header must be \"Bearer <API key>\"")
			return
		}
		c, ok := keys.Authenticate(strings.TrimSpace(secret))
		if !ok {
			unauthenticated(w, r, "the API key is not valid (it may have been removed from the keys file)")
			return
		}
		next.ServeHTTP(w, r.WithContext(auth.WithCaller(r.Context(), c)))
	})
}

func unauthenticated(w http.ResponseWriter, r *http.Request, detail string) {
	w.Header().Set("WWW-Authenticate", `Bearer realm="ferry"`)
	writeErrorFor(w, r, errUnauthenticated.New("%s", detail))
}

// writeErrorFor renders err in the envelope of the route's API.
func writeErrorFor(w http.ResponseWriter, r *http.Request, err error) {
	if isOpenAI(r) {
		writeOpenAIError(w, r, err)
		return
	}
	writeError(w, r, err)
}

// policy is what a route asks of the caller when keys are configured.
type policy struct {
	access auth.Access // 0: public, no key needed
	// bucketVar: the {bucket} path variable must be one of the key's
	// buckets. Routes whose bucket is in the body check it in the handler,
	// through allowBucket.
	bucketVar bool
	// sessionVar: the {id} path variable names a session, whose bucket the
	// session engine checks as it loads the record (session.WithAccess).
	sessionVar bool
	// signed: a presigned download's signature may stand in for a key
	// (links.go).
	signed bool
}

var (
	public = policy{}
	// reads and writes of the OpenAI adapter: its objects belong to the key
	// that made them, checked by the services.
	openAIRead  = policy{access: auth.Read}
	openAIWrite = policy{access: auth.Write}
	// bucketRead and bucketWrite: native routes with {bucket} in the path.
	bucketRead  = policy{access: auth.Read, bucketVar: true}
	contentRead = policy{access: auth.Read, bucketVar: true, signed: true}
	bucketWrite = policy{access: auth.Write, bucketVar: true}
	// anyRead and anyWrite check the bucket in the handler.
	anyRead  = policy{access: auth.Read}
	anyWrite = policy{access: auth.Write}
	// sessionRead and sessionWrite: routes on a session.
	sessionRead  = policy{access: auth.Read, sessionVar: true}
	sessionWrite = policy{access: auth.Write, sessionVar: true}
	admin        = policy{access: auth.Admin}
)

// guard makes every route's handler: the routes are mounted only through
// it, so the router walk in the tests finds a policy on each.
type guard struct {
	on bool // keys are configured
	// reserved are the OpenAI adapter's buckets: their files belong to
	// many keys, so natively only admins reach them.
	reserved map[string]bool
	// links checks the links that stand in for keys (links.go); sessions
	// finds the session an upload link names.
	links    *auth.Links
	sessions linkSessions
}

type guarded struct {
	g *guard
	p policy
	h http.HandlerFunc
}

func (g *guard) with(p policy, h http.HandlerFunc) *guarded { return &guarded{g: g, p: p, h: h} }

func (h *guarded) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if h.g.carriesLink(r) {
		if r, ok := h.g.admitLink(w, r, h.p); ok {
			h.h(w, r)
		}
		return
	}
	if !h.g.admit(w, r, h.p.access, mux.Vars(r)["bucket"], h.p.bucketVar) {
		return
	}
	if h.p.sessionVar {
		r = h.g.scoped(r)
	}
	h.h(w, r)
}

// scoped subjects every session the request reads to allowBucket, so a
// route on a session checks its bucket as it loads the record, once.
func (g *guard) scoped(r *http.Request) *http.Request {
	c, ok := auth.CallerFrom(r.Context())
	if !g.on || !ok || c.Access >= auth.Admin {
		return r
	}
	return r.WithContext(session.WithAccess(r.Context(), func(bkt string) error { return g.allowBucket(r, bkt) }))
}

// admit reports whether the caller may make the request: with keys on, a
// key of at least need access, in bkt when inBucket. If not, it has
// answered 401 or 403.
func (g *guard) admit(w http.ResponseWriter, r *http.Request, need auth.Access, bkt string, inBucket bool) bool {
	if !g.on || need == 0 {
		return true
	}
	c, ok := auth.CallerFrom(r.Context())
	if !ok {
		unauthenticated(w, r, "this route needs an API key: send \"Authorization: Bearer <API key>\"")
		return false
	}
	if !c.Can(need) {
		writeErrorFor(w, r, errForbidden.New("key %q has %s access; this needs %s", c.Name, c.Access, need))
		return false
	}
	if inBucket {
		if err := g.allowBucket(r, bkt); err != nil {
			writeErrorFor(w, r, err)
			return false
		}
	}
	return true
}

// TusHandler is the tus 1.0 handler, which names the bucket a creation
// request works in.
type TusHandler interface {
	http.Handler
	CreationBucket(r *http.Request) (bkt string, ok bool)
}

// tus authorises tus requests, all under one prefix route: HEAD needs read
// access, creation, PATCH and termination write, each in the upload's
// bucket: a creation's is checked here, an upload's as its session is
// loaded. OPTIONS (tus's discovery) needs no key.
func (g *guard) tus(h TusHandler) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if g.carriesLink(r) && r.Method != http.MethodOptions {
			if !g.admitTusLink(w, r, h) {
				return
			}
		} else if g.on && r.Method != http.MethodOptions {
			need := auth.Write
			if r.Method == http.MethodHead || r.Method == http.MethodGet {
				need = auth.Read
			}
			bkt, creation := h.CreationBucket(r)
			if !g.admit(w, r, need, bkt, creation) {
				return
			}
			r = g.scoped(r)
		}
		h.ServeHTTP(w, r)
	}
}

// allowBucket refuses a request whose caller may not use bkt.
func (g *guard) allowBucket(r *http.Request, bkt string) error {
	c, ok := auth.CallerFrom(r.Context())
	if !g.on || !ok || c.Access >= auth.Admin {
		return nil
	}
	if g.reserved[bkt] {
		return errForbidden.New("bucket %q holds the OpenAI adapter's files, which belong to their keys: use the OpenAI routes, or an admin key", bkt)
	}
	if !c.InBucket(bkt) {
		return errForbidden.New("key %q may not use bucket %q (its buckets: %s)", c.Name, bkt, strings.Join(c.Buckets, ", "))
	}
	return nil
}

// seesBucket is allowBucket for listings: whether to show bkt at all.
func (g *guard) seesBucket(r *http.Request, bkt string) bool {
	return g.allowBucket(r, bkt) == nil
}

// allowOrigins answers CORS for the listed origins: preflights (which
// carry no key, so this sits outside authenticate) and the headers that let
// a page read an upload's offset and location. With none listed it adds
// nothing, and browsers keep other sites' pages out.
func allowOrigins(origins []string, next http.Handler) http.Handler {
	if len(origins) == 0 {
		return next
	}
	return cors.New(cors.Options{
		AllowedOrigins: origins,
		AllowedMethods: []string{http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete},
		// Any header the page asks for: the origin is what is checked, and
		// the SDKs send ever new X-Stainless-* ones.
		AllowedHeaders: []string{"*"},
		ExposedHeaders: []string{"Location", "Upload-Offset", "Upload-Length", "Upload-Expires", "Upload-Metadata", "Tus-Resumable",
			"Tus-Version", "Tus-Extension", "Tus-Max-Size", "Tus-Checksum-Algorithm", "Upload-Defer-Length", "ETag", "Retry-After", "X-Request-Id", "Repr-Digest", "X-Amz-Checksum-Crc32c",
			"RateLimit-Limit", "RateLimit-Remaining", "RateLimit-Reset"},
		MaxAge: 600,
	}).Handler(next)
}

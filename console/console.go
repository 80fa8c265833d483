// Package console is ferryd's web console: a few static files (plain
// modern JavaScript, no build step) embedded in the binary and served at
// /console/. The page holds no data; every API call it makes carries the
// user's key as a Bearer header, so the handler is public.
package console

import (
	"crypto/sha256"
	"embed"
	"encoding/base64"
	"io/fs"
	"net/http"
	"strings"
)

//go:embed static
var files embed.FS

// Prefix is where the console is mounted.
const Prefix = "/console/"

// csp allows only the console's own files: no inline script or style, no
// other origin (it works offline), and no framing (clickjacking).
const csp = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; " +
	"form-action 'self'; base-uri 'none'; frame-ancestors 'none'"

// Handler serves the console under Prefix with its security headers;
// /console without the slash redirects there.
func Handler() http.Handler {
	static, err := fs.Sub(files, "static")
	if err != nil {
		panic(err) // the embedded tree is fixed at build time
	}
	fileServer := http.StripPrefix(Prefix, http.FileServer(http.FS(static)))
	tags := etags(static)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			http.Error(w, "the console is read with GET", http.StatusMethodNotAllowed)
			return
		}
		if !strings.HasPrefix(r.URL.Path, Prefix) {
			http.Redirect(w, r, Prefix, http.StatusMovedPermanently)
			return
		}
		h := w.Header()
		h.Set("Content-Security-Policy", csp)
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("X-Frame-Options", "DENY")
		h.Set("Referrer-Policy", "no-referrer")
		h.Set("Cross-Origin-Opener-Policy", "same-origin")
		// The files change with the binary: revalidated each time (by ETag,
		// since embedded files have no mtime), so a new ferryd's page never
		// mixes with an old one's modules.
		h.Set("Cache-Control", "no-cache")
		if tag, ok := tags[strings.TrimPrefix(r.URL.Path, Prefix)]; ok {
			h.Set("ETag", tag) // ServeContent answers If-None-Match with 304
		}
		fileServer.ServeHTTP(w, r)
	})
}

// etags are the embedded files' content hashes by path ("" is index.html).
func etags(static fs.FS) map[string]string {
	out := map[string]string{}
	_ = fs.WalkDir(static, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := fs.ReadFile(static, p)
		if err != nil {
			return err
		}
		sum := sha256.Sum256(b)
		out[p] = `"` + base64.RawURLEncoding.EncodeToString(sum[:12]) + `"`
		return nil
	})
	out[""] = out["index.html"]
	return out
}

package main

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"
)

// The browser harness of the console tests (console_test.go): one
// headless Chromium for the whole test, a tab per backend, and a proxy in
// front of ferryd that can slow request bodies down, so an upload is
// still running when the test reloads the page.

// chromiumPath finds Debian's chromium; without it the test skips, or
// fails under CI (scripts/test.sh installs it).
func chromiumPath(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	if os.Getenv("CI") != "" {
		t.Fatal("chromium is missing: apt-get install -y chromium (scripts/test.sh does it)")
	}
	t.Skip("chromium is missing: apt-get install -y chromium, or run scripts/test.sh, which installs it")
	return ""
}

// startBrowser starts one headless Chromium; tabs come from newTab.
func startBrowser(t *testing.T) context.Context {
	t.Helper()
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(chromiumPath(t)),
		chromedp.NoSandbox, // root in CI containers
		chromedp.DisableGPU,
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.WindowSize(1280, 860),
	)
	alloc, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	browser, cancelBrowser := chromedp.NewContext(alloc)
	t.Cleanup(func() { cancelBrowser(); cancelAlloc() })
	if err := chromedp.Do(browser); err != nil { // starts the process
		t.Fatalf("start chromium: %v", err)
	}
	return browser
}

// tab is one browser tab on one ferryd, through a throttling proxy.
type tab struct {
	ctx      context.Context
	base     string // the proxy's URL: the console's origin
	throttle atomic.Bool
	// cut fails every throttled body at its next read, as a dropped
	// network would: a reload alone leaves the bytes already in the
	// loopback socket buffers (megabytes) to reach ferryd, and a part
	// would land after the page that sent it is gone.
	cut     atomic.Bool
	dialogs atomic.Int32 // JavaScript dialogs opened (an alert() would be markup run as script)
	shots   string
}

func newTab(t *testing.T, browser context.Context, ferryd, shots string) *tab {
	t.Helper()
	tb := &tab{shots: shots}
	target, _ := url.Parse("http://" + ferryd)
	proxy := httputil.NewSingleHostReverseProxy(target)
	proxy.BufferPool = bigBuffers{} // with -race, 32 KiB copies made a 64 MiB upload take 30 s
	proxy.Transport = &http.Transport{MaxIdleConnsPerHost: 16}
	director := proxy.Director
	proxy.Director = func(r *http.Request) {
		director(r)
		if tb.throttle.Load() && r.Body != nil && r.ContentLength > 0 {
			r.Body = &slowBody{ReadCloser: r.Body, cut: &tb.cut}
		}
	}
	srv := httptest.NewServer(proxy)
	t.Cleanup(srv.Close)
	tb.base = srv.URL
	ctx, cancel := chromedp.NewContext(browser)
	t.Cleanup(cancel)
	err := chromedp.Listen(ctx, func(ev any) {
		if _, ok := ev.(*page.EventJavascriptDialogOpening); ok {
			tb.dialogs.Add(1)
			go func() { _, _ = chromedp.Call(ctx, page.HandleJavaScriptDialog, page.HandleJavaScriptDialogParams{}) }()
		}
	})
	if err != nil {
		t.Fatalf("open a tab: %v", err)
	}
	tb.ctx = ctx
	return tb
}

type bigBuffers struct{}

func (bigBuffers) Get() []byte  { return make([]byte, 1<<20) }
func (bigBuffers) Put(b []byte) {}

// slowBody lets a request body through at about 3 MiB/s, so four parts in
// flight move about 12 MiB/s.
type slowBody struct {
	io.ReadCloser
	cut *atomic.Bool
}

func (s *slowBody) Read(p []byte) (int, error) {
	if s.cut.Load() {
		return 0, errors.New("the test cut the connection")
	}
	if len(p) > 32<<10 {
		p = p[:32<<10]
	}
	time.Sleep(10 * time.Millisecond)
	return s.ReadCloser.Read(p)
}

// run runs actions with a deadline, failing t with what was being done.
func (tb *tab) run(t *testing.T, what string, actions ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	ctx, cancel := context.WithTimeout(tb.ctx, 30*time.Second)
	defer cancel()
	if err := chromedp.Do(ctx, actions...); err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}

// eval evaluates a JavaScript expression (awaiting a promise) into T.
func eval[T any](t *testing.T, tb *tab, expr string) T {
	t.Helper()
	ctx, cancel := context.WithTimeout(tb.ctx, 30*time.Second)
	defer cancel()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](expr, chromedp.EvalAwaitPromise))
	if err != nil {
		t.Fatalf("evaluate %s: %v", expr, err)
	}
	return v
}

// waitJS waits until a JavaScript expression is true.
func (tb *tab) waitJS(t *testing.T, what, expr string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		if eval[bool](t, tb, "!!("+expr+")") {
			return
		}
		if time.Now().After(deadline) {
			text := eval[string](t, tb, "document.body.innerText")
			t.Fatalf("%s: %s never became true; the page says:\n%s", what, expr, text)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// shot saves a screenshot of the page as NAME.png in the screenshot dir.
func (tb *tab) shot(t *testing.T, name string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(tb.ctx, 30*time.Second)
	defer cancel()
	png, err := chromedp.Run(ctx, chromedp.CaptureScreenshot())
	if err != nil {
		t.Fatalf("screenshot %s: %v", name, err)
	}
	if err := os.WriteFile(filepath.Join(tb.shots, name+".png"), png, 0o644); err != nil {
		t.Fatal(err)
	}
}

// crossOriginFetch runs fetch(target, init) from a page on another origin
// (a second local server) and returns the status, or -1 if the browser
// refused to expose the answer (CORS). It is for the checks of upload
// links and presigned downloads used from other sites, which arrive with
// the links branch; today it shows that the API keeps other origins out.
func (tb *tab) crossOriginFetch(t *testing.T, target, initJSON string) int {
	t.Helper()
	other := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html")
		_, _ = io.WriteString(w, "<!doctype html><title>elsewhere</title>")
	}))
	defer other.Close()
	tb.run(t, "open another origin", chromedp.Navigate(other.URL))
	return eval[int](t, tb, `fetch(`+jsString(target)+`, `+initJSON+`).then(r => r.status, () => -1)`)
}

func jsString(s string) string {
	r := strings.NewReplacer(`\`, `\\`, `'`, `\'`, "\n", `\n`)
	return "'" + r.Replace(s) + "'"
}

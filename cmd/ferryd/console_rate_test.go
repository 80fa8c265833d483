package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// The console's upload rate against the ferry CLI's, side by side in one
// run, for one 256 MiB file on loopback (both with 4 parts in flight; the
// CLI's are 8 MiB, the console's 16 MiB), and the console's load time and
// bytes, and the browser's own ceiling. A measurement, not a
// check: docs/console.md has the figures and this command.
//
//	FERRY_CONSOLE_BENCH=1 scripts/test.sh -count=1 -v -run TestConsoleUploadRate ./cmd/ferryd/
func TestConsoleUploadRate(t *testing.T) {
	if os.Getenv("FERRY_CONSOLE_BENCH") == "" {
		t.Skip("a measurement: set FERRY_CONSOLE_BENCH=1 (docs/console.md)")
	}
	browser := startBrowser(t)
	file := testFile(t, "rate.bin", 256)
	cli := filepath.Join(t.TempDir(), "ferry")
	if out, err := exec.Command("go", "build", "-o", cli, "github.com/ferryhq/ferry/cmd/ferry").CombinedOutput(); err != nil {
		t.Fatalf("build the CLI: %v\n%s", err, out)
	}
	for _, name := range []string{"embedded", "redis+s3"} {
		mk := map[string]func(testing.TB) backendEnv{"embedded": embeddedEnv, "redis+s3": redisS3Env}[name]
		t.Run(name, func(t *testing.T) {
			be := mk(t)
			p := startFerryd(t, be.args, be.env...)
			tb := newTab(t, browser, p.addr, t.TempDir())
			base := "http://" + p.addr // straight to ferryd, as the CLI goes
			consoleLoad(t, tb, base)
			const mib = 256.0
			var cliSum, webSum float64
			for round := range 3 {
				start := time.Now()
				cmd := exec.Command(cli, "--server", base, "upload", "-quiet", file, "rate/cli.bin")
				cmd.Env = append(cleanEnv(), "FERRY_STATE_DIR="+t.TempDir())
				if out, err := cmd.CombinedOutput(); err != nil {
					t.Fatalf("ferry upload: %v\n%s", err, out)
				}
				cliRate := mib / time.Since(start).Seconds()
				tb.run(t, "pick", chromedp.SetUploadFiles(chromedp.CSS(`#upload-files`), []string{file}))
				done := `document.querySelectorAll('#uploads-list li[data-ms]').length === ` + strconv.Itoa(round+1)
				tb.waitJS(t, "the console's upload", done)
				ms := eval[float64](t, tb, `+document.querySelector('#uploads-list li[data-ms]').dataset.ms`)
				webRate := mib / (ms / 1000)
				t.Logf("round %d: ferry upload %.0f MiB/s, console %.0f MiB/s (%.2f×)", round+1, cliRate, webRate, webRate/cliRate)
				cliSum += cliRate
				webSum += webRate
			}
			t.Logf("%s, 256 MiB, mean of 3: ferry upload %.0f MiB/s, console %.0f MiB/s: %.2f×", name, cliSum/3, webSum/3, webSum/cliSum)
		})
	}
	t.Run("browser ceiling", func(t *testing.T) { browserCeiling(t, browser, file) })
}

// browserCeiling is how fast this browser sends a file at all: the
// console's pattern (4 XHR PUTs of 16 MiB slices in flight) to a server
// that only reads and drops the bytes, beside `ferry upload`'s rate.
func browserCeiling(t *testing.T, browser context.Context, file string) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/":
			fmt.Fprint(w, `<!doctype html><input type=file id=f><script src="/send.js"></script>`)
		case "/send.js":
			w.Header().Set("Content-Type", "text/javascript")
			fmt.Fprint(w, `window.send = async () => {
  const f = document.getElementById('f').files[0], part = 16 << 20, todo = [], t0 = performance.now();
  for (let o = 0; o < f.size; o += part) todo.push(o);
  const put = (b) => new Promise((ok, no) => { const x = new XMLHttpRequest(); x.open('PUT', '/drop'); x.onload = ok; x.onerror = no; x.send(b); });
  await Promise.all([1, 2, 3, 4].map(async () => { while (todo.length) { const o = todo.shift(); await put(f.slice(o, o + part)); } }));
  return performance.now() - t0; };`)
		default:
			_, _ = io.Copy(io.Discard, r.Body)
		}
	}))
	defer srv.Close()
	tb := &tab{}
	ctx, cancel := chromedp.NewContext(browser)
	defer cancel()
	if err := chromedp.Do(ctx); err != nil { // opens the tab, for as long as ctx lives
		t.Fatalf("open a tab: %v", err)
	}
	tb.ctx = ctx
	tb.run(t, "open the page", chromedp.Navigate(srv.URL), chromedp.SetUploadFiles(chromedp.CSS(`#f`), []string{file}))
	var sum float64
	for round := range 3 {
		rate := 256 / (eval[float64](t, tb, `send()`) / 1000)
		t.Logf("round %d: the browser sends to a server that drops the bytes at %.0f MiB/s", round+1, rate)
		sum += rate
	}
	t.Logf("browser ceiling, mean of 3: %.0f MiB/s", sum/3)
}

// consoleLoad logs how long the console takes to show a bucket, cold
// (a new tab's first visit) and warm (a reload: every file revalidated by
// ETag), and the bytes it ships.
func consoleLoad(t *testing.T, tb *tab, base string) {
	for _, visit := range []string{"cold", "warm"} {
		if visit == "cold" {
			tb.run(t, "open the console", chromedp.Navigate(base+"/console/?bucket=rate"))
		} else {
			tb.run(t, "reload the console", chromedp.Reload())
		}
		shown := eval[float64](t, tb, `new Promise(ok => { const f = () => document.querySelector('#view table') ? ok(performance.now()) : requestAnimationFrame(f); f(); })`)
		loaded := eval[float64](t, tb, `performance.getEntriesByType('navigation')[0].loadEventEnd`)
		type sizes struct{ Files, Body, Transfer float64 }
		s := eval[sizes](t, tb, `(() => { const es = [performance.getEntriesByType('navigation')[0], ...performance.getEntriesByType('resource').filter(e => e.name.includes('/console/'))];
			return {Files: es.length, Body: es.reduce((n, e) => n + e.encodedBodySize, 0), Transfer: es.reduce((n, e) => n + e.transferSize, 0)}; })()`)
		t.Logf("console load (%s): page and modules loaded in %.0f ms, bucket shown in %.0f ms; %v files, %.0f bytes of body, %.0f bytes on the wire",
			visit, loaded, shown, s.Files, s.Body, s.Transfer)
	}
}

package main

import (
	"fmt"
	"io"
	"os"
	"time"
)

// progress draws a one-line progress bar on a terminal and prints a
// summary at the end (both on stderr; stdout stays for data).
type progress struct {
	w          io.Writer
	quiet, tty bool
	start      time.Time
	from       int64 // bytes already there when this run began
	high       int64 // the most shown: bytes of a failed part sent again were counted once already
	last       time.Time
	drawn      bool
}

func newProgress(w io.Writer, quiet bool) *progress {
	tty := false
	if f, ok := w.(*os.File); ok {
		if st, err := f.Stat(); err == nil {
			tty = st.Mode()&os.ModeCharDevice != 0
		}
	}
	return &progress{w: w, quiet: quiet, tty: tty && !quiet}
}

func (p *progress) begin(from int64) { p.start, p.from, p.high = time.Now(), from, from }

func (p *progress) note(format string, args ...any) {
	if !p.quiet {
		p.clear()
		fmt.Fprintf(p.w, "ferry: "+format+"\n", args...)
	}
}

func (p *progress) update(done, total int64) {
	done = max(done, p.high)
	p.high = done
	if !p.tty || (time.Since(p.last) < 200*time.Millisecond && done < total) {
		return
	}
	p.last = time.Now()
	pct := 100.0
	if total > 0 {
		pct = 100 * float64(done) / float64(total)
	}
	rate := float64(done-p.from) / max(time.Since(p.start).Seconds(), 1e-3)
	line := fmt.Sprintf("%5.1f%%  %s / %s  %s/s", pct, bytesText(done), bytesText(total), bytesText(int64(rate)))
	if rate > 0 && done < total {
		line += "  ETA " + time.Duration(float64(total-done)/rate*float64(time.Second)).Round(time.Second).String()
	}
	fmt.Fprintf(p.w, "\r%-60s", line)
	p.drawn = true
}

func (p *progress) clear() {
	if p.drawn {
		fmt.Fprintf(p.w, "\r%-60s\r", "")
		p.drawn = false
	}
}

func (p *progress) abort() { p.clear() }

func (p *progress) finish(verb string, n int64, what string) {
	p.clear()
	if p.quiet {
		return
	}
	d := time.Since(p.start)
	fmt.Fprintf(p.w, "ferry: %s %s (%s) in %s, %s/s\n", verb, what, bytesText(n), d.Round(time.Millisecond),
		bytesText(int64(float64(n-p.from)/max(d.Seconds(), 1e-3))))
}

// bytesText writes n in binary units.
func bytesText(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	v, i := float64(n), -1
	for v >= unit && i < 4 {
		v /= unit
		i++
	}
	return fmt.Sprintf("%.1f %ciB", v, "KMGTP"[i])
}

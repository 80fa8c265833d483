package tus

import (
	"context"
	"log/slog"

	xslog "golang.org/x/exp/slog"
)

// tusdLogger hands tusd (which logs through golang.org/x/exp/slog) Ferry's
// logger, from warnings up: every request is in Ferry's access log already.
func tusdLogger(log *slog.Logger) *xslog.Logger {
	return xslog.New(bridge{log.Handler()})
}

type bridge struct{ h slog.Handler }

func (b bridge) Enabled(ctx context.Context, l xslog.Level) bool {
	return l >= xslog.LevelWarn && b.h.Enabled(ctx, slog.Level(l))
}

func (b bridge) Handle(ctx context.Context, r xslog.Record) error {
	level := slog.Level(r.Level)
	if r.Message == "BodyReadError" { // the client's network, not a fault of ferryd's
		level = slog.LevelInfo
	}
	if !b.h.Enabled(ctx, level) {
		return nil
	}
	out := slog.NewRecord(r.Time, level, "tusd: "+r.Message, r.PC)
	r.Attrs(func(a xslog.Attr) bool {
		out.AddAttrs(slog.Any(a.Key, a.Value.Any()))
		return true
	})
	return b.h.Handle(ctx, out)
}

func (b bridge) WithAttrs(as []xslog.Attr) xslog.Handler {
	conv := make([]slog.Attr, len(as))
	for i, a := range as {
		conv[i] = slog.Any(a.Key, a.Value.Any())
	}
	return bridge{b.h.WithAttrs(conv)}
}

func (b bridge) WithGroup(name string) xslog.Handler { return bridge{b.h.WithGroup(name)} }

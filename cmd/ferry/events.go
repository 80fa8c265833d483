package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/ferryhq/ferry/client"
)

func (x *cli) events(ctx context.Context, args []string) error {
	fs := x.flags("events", "[--follow] [--after ID] [--limit N] [--json]",
		"Prints ferryd's events, one a line: time, type, id, and the file (bucket/key), session (id bucket/key)\n"+
			"or bucket it is about; only those of the key's buckets. Without --follow, the events kept after\n"+
			"--after (default: from the oldest); with --follow, then those to come as they happen until\n"+
			"interrupted (default: from now on, as tail -f), retrying network errors.")
	follow := fs.Bool("follow", false, "keep printing events as they happen")
	after := fs.String("after", "", "print the events after this event id (an earlier line's id)")
	limit := fs.Int("limit", 1000, "events asked for per request (1-1000)")
	asJSON := fs.Bool("json", false, "print each event as the JSON object ferryd sent, one a line")
	if err := parse(fs, args, 0, 0); err != nil {
		return err
	}
	if *limit < 1 || *limit > 1000 {
		return fmt.Errorf("%w: --limit %d: from 1 to 1000", errUsage, *limit)
	}
	print := func(e client.Event) error { return x.printEvent(e, *asJSON) }
	cursor := *after
	if *follow && cursor == "" {
		cursor = "now"
	}
	cursor, err := x.printKept(ctx, cursor, *limit, print)
	if err == nil && *follow {
		err = x.c.Follow(ctx, cursor, print)
	}
	if *follow && errors.Is(err, context.Canceled) && ctx.Err() != nil {
		return nil // Ctrl-C: the way to stop following
	}
	return err
}

// printKept prints the events kept after cursor, in pages of limit, and
// returns where they end. Its first answer fixes "now", so what happens
// after it is printed by a Follow from the returned cursor.
func (x *cli) printKept(ctx context.Context, cursor string, limit int, print func(client.Event) error) (string, error) {
	for {
		page, err := x.c.Events(ctx, cursor, limit, 0)
		if err != nil {
			return cursor, err
		}
		for _, e := range page.Data {
			if err := print(e); err != nil {
				return cursor, err
			}
		}
		// A page may be short, even empty, while more follow (the server
		// reads only so many events a request, some of them for other
		// keys): only one that moves the cursor no further is the end.
		done := len(page.Data) == 0 && page.Next == cursor
		cursor = page.Next
		if done {
			return cursor, nil
		}
	}
}

func (x *cli) printEvent(e client.Event, asJSON bool) error {
	if asJSON {
		b, err := json.Marshal(e) // one line: the data is compacted
		if err != nil {
			return err
		}
		_, err = fmt.Fprintf(x.stdout, "%s\n", b)
		return err
	}
	_, err := fmt.Fprintf(x.stdout, "%s  %-19s  %s  %s\n",
		e.Timestamp.UTC().Format("2006-01-02 15:04:05.000"), e.Type, e.ID, eventSummary(e))
	return err
}

// eventSummary is what an event is about, in a few words: the file, the
// session or the bucket for the known types, else the data as compact JSON.
func eventSummary(e client.Event) string {
	var d struct {
		ID       string `json:"id"`
		Bucket   string `json:"bucket"`
		Key      string `json:"key"`
		Name     string `json:"name"`
		Location string `json:"location"`
	}
	if json.Unmarshal(e.Data, &d) == nil {
		kind, _, _ := strings.Cut(e.Type, ".")
		switch {
		case kind == "file" && d.Bucket != "":
			return d.Bucket + "/" + d.Key
		case kind == "session" && d.ID != "":
			return d.ID + " " + d.Bucket + "/" + d.Key
		case kind == "bucket" && d.Name != "":
			return strings.TrimSpace(d.Name + " " + d.Location)
		}
	}
	var b bytes.Buffer
	if json.Compact(&b, e.Data) != nil {
		return string(e.Data)
	}
	return b.String()
}

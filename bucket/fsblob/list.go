package fsblob

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"slices"
	"strings"

	"github.com/ferryhq/ferry/bucket"
)

// List walks the objects in the byte order of whole keys, as S3 lists: a
// directory d sorts among its siblings as "d/", which is where its keys
// fall ("a-b" < "a.b" < "a/..." < "a0"). It reads only the directories that
// can hold keys after `after` under prefix, and stops at limit+1 keys.
// Symlinks, other non-regular files and names no key could have (put there
// by hand) are not objects and are skipped.
//
// Memory stays O(limit) however large a directory is: directories are read
// in batches, keeping only the smallest names still needed.
func (b *Backend) List(_ context.Context, prefix, after string, limit int) ([]bucket.ObjectInfo, bool, error) {
	if limit <= 0 {
		limit = 1000
	}
	l := &lister{b: b, prefix: prefix, after: after, limit: limit}
	if err := l.walk(b.objects, ""); err != nil {
		return nil, false, fmt.Errorf("fsblob: list %q: %w", prefix, err)
	}
	return l.out, l.more, nil
}

type lister struct {
	b             *Backend
	prefix, after string
	limit         int
	out           []bucket.ObjectInfo
	more          bool
}

// dirent is a directory entry with its sort key: its name, plus "/" for a
// directory.
type dirent struct {
	sortKey, name string
	fi            fs.FileInfo
}

func (l *lister) walk(dir, keyPrefix string) error {
	from := "" // entries sorting at or before this are done
	for {
		batch, next, rest, err := l.smallest(dir, keyPrefix, from, l.limit-len(l.out)+1)
		if err != nil {
			return err
		}
		for _, d := range batch {
			key := keyPrefix + d.name
			if d.fi.IsDir() {
				if err := l.walk(dir+"/"+d.name, key+"/"); err != nil || l.more {
					return err
				}
				continue
			}
			if len(l.out) == l.limit {
				l.more = true
				return nil
			}
			l.out = append(l.out, info(key, d.fi))
		}
		if !rest {
			return nil
		}
		from = next
	}
}

// smallest returns, in order, dir's first entries after from that can hold
// a match, at most about n; rest reports that more may follow, from next on.
//
// It reads names only, so that just the kept ones are lstat'ed: a directory
// opened through os.Root would otherwise lstat every entry. Names are kept
// by name, but a directory "d" sorts as "d/", after siblings such as "d-x";
// so a kept entry whose sort key passes the last kept name waits for the
// next round, which finds it again as a prefix of from.
func (l *lister) smallest(dir, keyPrefix, from string, n int) (batch []dirent, next string, rest bool, err error) {
	names, next, rest, err := l.names(dir, keyPrefix, from, n)
	if err != nil {
		return nil, "", false, err
	}
	for _, name := range names {
		fi, err := l.b.root.Lstat(dir + "/" + name)
		if err != nil {
			continue // deleted while we listed
		}
		d := dirent{sortKey: name, name: name, fi: fi}
		if fi.IsDir() {
			d.sortKey += "/"
		}
		if d.sortKey > from && (!rest || d.sortKey <= next) && l.candidate(keyPrefix, d) {
			batch = append(batch, d)
		}
	}
	slices.SortFunc(batch, func(x, y dirent) int { return strings.Compare(x.sortKey, y.sortKey) })
	return batch, next, rest, nil
}

// names reads dir in batches and keeps the n smallest names after from
// that may match, plus any name that is a directory's prefix of from (its
// sort key may still lie ahead). Memory stays O(n) whatever dir holds.
func (l *lister) names(dir, keyPrefix, from string, n int) (names []string, next string, rest bool, err error) {
	f, err := l.b.root.Open(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, "", false, nil // pruned by a Delete while we listed
	}
	if err != nil {
		return nil, "", false, err
	}
	defer f.Close()
	var sel, behind []string
	trim := func() {
		slices.Sort(sel)
		if len(sel) > n {
			sel, rest = sel[:n], true
		}
	}
	for {
		batch, err := f.Readdirnames(1024)
		for _, name := range batch {
			key := keyPrefix + name
			switch {
			case bucket.IsStagingSegment(name): // staging, ours or a nested served directory's
			case !strings.HasPrefix(key, l.prefix) && !strings.HasPrefix(l.prefix, key):
			case key <= l.after && !strings.HasPrefix(l.after, key):
			case name > from:
				// Once a trim dropped names (rest), none past the n-th
				// kept one can be chosen.
				if !rest || name < sel[n-1] {
					sel = append(sel, name)
				}
				if len(sel) >= 2*n {
					trim()
				}
			case strings.HasPrefix(from, name) && (len(from) == len(name) || from[len(name)] < '/'):
				behind = append(behind, name)
			}
		}
		if errors.Is(err, io.EOF) || len(batch) == 0 {
			break
		}
		if err != nil {
			return nil, "", false, err
		}
	}
	trim()
	if rest {
		next = sel[len(sel)-1]
	}
	return append(behind, sel...), next, rest, nil
}

// candidate reports whether d is an object matching the listing, or a
// directory that can hold one.
func (l *lister) candidate(keyPrefix string, d dirent) bool {
	key := keyPrefix + d.name
	if d.fi.IsDir() {
		sub := key + "/"
		return (strings.HasPrefix(sub, l.prefix) || strings.HasPrefix(l.prefix, sub)) &&
			(l.after < sub || strings.HasPrefix(l.after, sub))
	}
	return d.fi.Mode().IsRegular() && strings.HasPrefix(key, l.prefix) && key > l.after && bucket.ValidateKey(key) == nil
}

package auth

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
)

func writeKeys(t *testing.T, path string, keys ...Key) {
	t.Helper()
	data, err := yaml.Marshal(file{Keys: keys})
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
}

func TestParseRefusesUnusableKeys(t *testing.T) {
	h := Hash("x")
	for name, c := range map[string]struct{ yaml, want string }{
		"no name":        {"keys: [{sha256: " + h + ", access: read, buckets: [a]}]", "name is empty"},
		"short hash":     {"keys: [{name: a, sha256: abc, access: read, buckets: [a]}]", "64 hex digits"},
		"no access":      {"keys: [{name: a, sha256: " + h + ", buckets: [a]}]", "access is missing"},
		"bad access":     {"keys: [{name: a, sha256: " + h + ", access: owner, buckets: [a]}]", "use read, write or admin"},
		"no buckets":     {"keys: [{name: a, sha256: " + h + ", access: write}]", "buckets is empty"},
		"bad pattern":    {"keys: [{name: a, sha256: " + h + ", access: read, buckets: ['[']}]", "pattern"},
		"unknown field":  {"keys: [{name: a, sha256: " + h + ", access: read, buckets: [a], scope: x}]", "scope"},
		"same name":      {"keys: [{name: a, sha256: " + h + ", access: read, buckets: [a]}, {name: a, sha256: " + Hash("y") + ", access: read, buckets: [a]}]", "used twice"},
		"same key twice": {"keys: [{name: a, sha256: " + h + ", access: read, buckets: [a]}, {name: b, sha256: " + h + ", access: read, buckets: [a]}]", "same key"},
	} {
		if _, err := Parse([]byte(c.yaml)); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want an error saying %q", name, err, c.want)
		}
	}
	if keys, err := Parse([]byte("keys: [{name: root, sha256: " + h + ", access: admin}]")); err != nil || len(keys) != 1 {
		t.Fatalf("an admin key needs no buckets: %v", err)
	}
}

func TestCallerScopes(t *testing.T) {
	c := Caller{Name: "w", Access: Write, Buckets: []string{"photos", "logs-*"}}
	for bkt, want := range map[string]bool{"photos": true, "logs-2026": true, "photos2": false, "logs": false, "other": false} {
		if c.InBucket(bkt) != want {
			t.Errorf("InBucket(%q) = %v", bkt, !want)
		}
	}
	if !c.Can(Read) || !c.Can(Write) || c.Can(Admin) {
		t.Error("write access must include read and exclude admin")
	}
	if !(Caller{Access: Admin}).InBucket("anything") {
		t.Error("admin must reach every bucket")
	}

	ctx := context.Background()
	if !Sees(ctx, "") || !Sees(ctx, "someone") {
		t.Error("with auth off every object is visible")
	}
	as := WithCaller(ctx, c)
	if !Sees(as, "w") || Sees(as, "v") || Sees(as, "") {
		t.Error("a key sees only what it owns (nothing made before auth)")
	}
	if !Sees(WithCaller(ctx, Caller{Name: "root", Access: Admin}), "") {
		t.Error("admin sees objects of no owner")
	}
	if Owner(as) != "w" || Owner(ctx) != "" {
		t.Error("owner is the caller's name, or empty without auth")
	}
}

// watched opens the keys file at path, and returns poll, which looks at
// the file once as Watch does on each tick: the test decides when the
// watcher looks, so no write races it.
func watched(t *testing.T, path string, log *bytes.Buffer) (ring *Keyring, poll func()) {
	t.Helper()
	ring, err := Open(path, slog.New(slog.NewTextHandler(log, nil)))
	if err != nil {
		t.Fatal(err)
	}
	seen := ring.stamp
	return ring, func() { seen = ring.poll(seen) }
}

// A new key works once written; a broken edit keeps the keys in force;
// a removed key stops working. Watch's poll picks each change up.
func TestKeyringReloads(t *testing.T) {
	path := filepath.Join(t.TempDir(), "keys.yaml")
	s1, k1 := NewKey("one", []string{"a"}, Read)
	s2, k2 := NewKey("two", []string{"b"}, Write)
	writeKeys(t, path, k1)
	var log bytes.Buffer
	ring, poll := watched(t, path, &log)
	if c, ok := ring.Authenticate(s1); !ok || c.Name != "one" || c.Access != Read {
		t.Fatalf("key one: %+v %v", c, ok)
	}
	if _, ok := ring.Authenticate(s2); ok {
		t.Fatal("key two works before it is in the file")
	}

	writeKeys(t, path, k1, k2)
	poll()
	if _, ok := ring.Authenticate(s2); !ok {
		t.Fatal("key two does not work once written")
	}

	if err := os.WriteFile(path, []byte("keys: [{name: broken"), 0o600); err != nil {
		t.Fatal(err)
	}
	poll()
	if _, ok := ring.Authenticate(s2); !ok {
		t.Fatal("a broken edit dropped the keys in force")
	}
	if err := ring.Reload(); err == nil {
		t.Fatal("a broken file reloaded without an error")
	}
	if !strings.Contains(log.String(), "keys_reload_failed") {
		t.Fatalf("the broken edit is not logged: %s", log.String())
	}

	writeKeys(t, path, k2)
	poll()
	if _, ok := ring.Authenticate(s1); ok {
		t.Fatal("key one still works after its removal")
	}
	if _, err := Open(filepath.Join(t.TempDir(), "missing.yaml"), nil); err == nil {
		t.Fatal("a missing keys file opened")
	}
}

// A rewrite in place (os.WriteFile, a shell's >) truncates the file before
// it writes it. A poll that lands in between sees an empty file: that must
// not put "no keys" in force, or every request gets 401 until the next
// change. "keys: []" is how a file says no keys.
func TestKeyringIgnoresEmptyFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "keys.yaml")
	s1, k1 := NewKey("one", []string{"a"}, Read)
	s2, k2 := NewKey("two", []string{"b"}, Write)
	writeKeys(t, path, k1)
	var log bytes.Buffer
	ring, poll := watched(t, path, &log)
	for _, c := range []struct {
		empty string
		then  []Key
	}{{"", []Key{k1, k2}}, {" \n\t\n", []Key{k1}}} {
		if err := os.WriteFile(path, []byte(c.empty), 0o600); err != nil { // the truncate
			t.Fatal(err)
		}
		poll()
		if _, ok := ring.Authenticate(s1); !ok {
			t.Fatalf("an empty file (%q) dropped the keys in force", c.empty)
		}
		if !strings.Contains(log.String(), "keys_file_empty") {
			t.Fatalf("the empty file is not logged: %s", log.String())
		}
		writeKeys(t, path, c.then...) // the write
		poll()
		if _, ok := ring.Authenticate(s2); ok != (len(c.then) == 2) {
			t.Fatalf("after the write of %d keys, key two works: %v", len(c.then), ok)
		}
	}

	if err := os.WriteFile(path, []byte("keys: []\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	poll()
	if ring.Len() != 0 {
		t.Fatalf("%d keys in force after \"keys: []\", want none", ring.Len())
	}
	if err := os.WriteFile(path, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(path, nil); !errors.Is(err, ErrEmpty) {
		t.Fatalf("Open of an empty file: %v, want ErrEmpty", err)
	}
}

func TestNewKeyMatchesItsHash(t *testing.T) {
	secret, key := NewKey("n", []string{"x"}, Write)
	if !strings.HasPrefix(secret, KeyPrefix) || Hash(secret) != key.SHA256 || strings.Contains(key.SHA256, secret) {
		t.Fatalf("secret %q, entry %+v", secret, key)
	}
	if other, _ := NewKey("n", nil, Admin); other == secret {
		t.Fatal("two keys alike")
	}
}

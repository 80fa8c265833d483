package auth

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

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

// A new key works once written; a broken edit keeps the keys in force;
// a removed key stops working. Watch picks each change up by itself.
func TestKeyringReloads(t *testing.T) {
	path := filepath.Join(t.TempDir(), "keys.yaml")
	s1, k1 := NewKey("one", []string{"a"}, Read)
	s2, k2 := NewKey("two", []string{"b"}, Write)
	writeKeys(t, path, k1)
	ring, err := Open(path, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	if c, ok := ring.Authenticate(s1); !ok || c.Name != "one" || c.Access != Read {
		t.Fatalf("key one: %+v %v", c, ok)
	}
	if _, ok := ring.Authenticate(s2); ok {
		t.Fatal("key two works before it is in the file")
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go ring.Watch(ctx, 10*time.Millisecond)
	eventually := func(what string, cond func() bool) {
		t.Helper()
		for deadline := time.Now().Add(5 * time.Second); !cond(); time.Sleep(10 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatal(what)
			}
		}
	}

	writeKeys(t, path, k1, k2)
	eventually("key two never started working", func() bool { _, ok := ring.Authenticate(s2); return ok })

	if err := os.WriteFile(path, []byte("keys: [{name: broken"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := ring.Reload(); err == nil {
		t.Fatal("a broken file reloaded without an error")
	}
	if _, ok := ring.Authenticate(s2); !ok {
		t.Fatal("a broken edit dropped the keys in force")
	}

	writeKeys(t, path, k2)
	eventually("key one still works after its removal", func() bool { _, ok := ring.Authenticate(s1); return !ok })
	if _, err := Open(filepath.Join(t.TempDir(), "missing.yaml"), nil); err == nil {
		t.Fatal("a missing keys file opened")
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

// Package auth is ferryd's API keys: the keys file, what each key may do,
// and the caller a request runs as. It knows nothing of HTTP; the HTTP
// layer authenticates a request here and the domain packages read the
// caller from the context to record and check ownership.
package auth

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path"
	"strings"
	"sync"
	"time"

	"go.yaml.in/yaml/v3"
)

// Access is what a key may do, each level including the ones before.
type Access int

const (
	// Read lists buckets and files, and reads their information and content.
	Read Access = iota + 1
	// Write also creates sessions, appends and deletes.
	Write
	// Admin also registers and unregisters locations, and reaches every
	// bucket and every OpenAI object whoever created it.
	Admin
)

func (a Access) String() string {
	switch a {
	case Read:
		return "read"
	case Write:
		return "write"
	case Admin:
		return "admin"
	}
	return fmt.Sprintf("access(%d)", int(a))
}

// ParseAccess reads "read", "write" or "admin".
func ParseAccess(s string) (Access, error) {
	for _, a := range []Access{Read, Write, Admin} {
		if s == a.String() {
			return a, nil
		}
	}
	return 0, fmt.Errorf("access %q: use read, write or admin", s)
}

func (a *Access) UnmarshalYAML(n *yaml.Node) error {
	v, err := ParseAccess(n.Value)
	*a = v
	return err
}

func (a Access) MarshalYAML() (any, error) { return a.String(), nil }

// Key is one line of the keys file. The file holds the SHA-256 of each key,
// never the key itself.
type Key struct {
	Name    string   `yaml:"name"`
	SHA256  string   `yaml:"sha256"`
	Buckets []string `yaml:"buckets,flow"` // path.Match patterns: "photos", "logs-*", "*"
	Access  Access   `yaml:"access"`
}

// Caller is who a request runs as: the key's name and what it may do.
type Caller struct {
	Name    string
	Access  Access
	Buckets []string
}

// Can reports whether the caller has at least access a.
func (c Caller) Can(a Access) bool { return c.Access >= a }

// InBucket reports whether bkt is one of the caller's buckets. Admin keys
// reach every bucket.
func (c Caller) InBucket(bkt string) bool {
	if c.Access >= Admin {
		return true
	}
	for _, p := range c.Buckets {
		if ok, _ := path.Match(p, bkt); ok {
			return true
		}
	}
	return false
}

type callerKey struct{}

// WithCaller returns ctx running as c.
func WithCaller(ctx context.Context, c Caller) context.Context {
	return context.WithValue(ctx, callerKey{}, c)
}

// CallerFrom returns the caller ctx runs as; false when auth is off.
func CallerFrom(ctx context.Context) (Caller, bool) {
	c, ok := ctx.Value(callerKey{}).(Caller)
	return c, ok
}

// Owner is the name to record as the owner of what ctx creates: the
// caller's, or "" when auth is off.
func Owner(ctx context.Context) string {
	c, _ := CallerFrom(ctx)
	return c.Name
}

// Sees reports whether ctx may see an object owned by owner: always with
// auth off, as an admin, or as its owner. Objects made before auth was on
// have no owner and only admins see them.
func Sees(ctx context.Context, owner string) bool {
	c, ok := CallerFrom(ctx)
	return !ok || c.Access >= Admin || owner != "" && owner == c.Name
}

// file is the keys file's shape.
type file struct {
	Keys []Key `yaml:"keys"`
}

// ErrEmpty: the keys file holds nothing but white space. That is how a
// file looks between the truncate and the write of a rewrite in place
// (os.WriteFile, a shell's >, some editors), so it is not taken for a key
// set; a deliberate "no keys" is written as "keys: []".
var ErrEmpty = errors.New(`empty (caught mid-write?); a file with no keys says "keys: []"`)

// Parse reads a keys file, rejecting what would make a key unusable or
// ambiguous.
func Parse(data []byte) ([]Key, error) {
	if len(bytes.TrimSpace(data)) == 0 {
		return nil, ErrEmpty
	}
	var f file
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&f); err != nil && !errors.Is(err, io.EOF) {
		return nil, err
	}
	names, hashes := map[string]bool{}, map[string]bool{}
	for i, k := range f.Keys {
		where := fmt.Sprintf("keys[%d] (%s)", i, k.Name)
		switch {
		case k.Name == "":
			return nil, fmt.Errorf("keys[%d]: name is empty", i)
		case names[k.Name]:
			return nil, fmt.Errorf("%s: name used twice", where)
		case !validHash(k.SHA256):
			return nil, fmt.Errorf("%s: sha256 must be 64 hex digits (ferry keys new prints it)", where)
		case hashes[strings.ToLower(k.SHA256)]:
			return nil, fmt.Errorf("%s: the same key as an earlier entry", where)
		case k.Access == 0:
			return nil, fmt.Errorf("%s: access is missing: use read, write or admin", where)
		case k.Access < Admin && len(k.Buckets) == 0:
			return nil, fmt.Errorf("%s: buckets is empty: list the bucket patterns the key may use", where)
		}
		for _, p := range k.Buckets {
			if _, err := path.Match(p, ""); err != nil {
				return nil, fmt.Errorf("%s: bucket pattern %q: %v", where, p, err)
			}
		}
		names[k.Name], hashes[strings.ToLower(k.SHA256)] = true, true
	}
	return f.Keys, nil
}

func validHash(s string) bool {
	b, err := hex.DecodeString(s)
	return err == nil && len(b) == sha256.Size
}

// Hash is a key's SHA-256 as the keys file writes it.
func Hash(secret string) string {
	sum := sha256.Sum256([]byte(secret))
	return hex.EncodeToString(sum[:])
}

// KeyPrefix starts every key ferry makes, so a leaked one is easy to find.
const KeyPrefix = "fry_"

// NewKey returns a new random key and its keys-file entry.
func NewKey(name string, buckets []string, access Access) (string, Key) {
	var b [24]byte
	_, _ = rand.Read(b[:])
	secret := KeyPrefix + hex.EncodeToString(b[:])
	return secret, Key{Name: name, SHA256: Hash(secret), Buckets: buckets, Access: access}
}

// Keyring is the keys file as last read. It is safe for concurrent use.
type Keyring struct {
	path string
	log  *slog.Logger

	mu     sync.RWMutex
	byHash map[string]Caller
	stamp  string // what the file looked like when read (size and mtime)
}

// Open reads the keys file at path.
func Open(path string, log *slog.Logger) (*Keyring, error) {
	if log == nil {
		log = slog.Default()
	}
	k := &Keyring{path: path, log: log}
	if err := k.Reload(); err != nil {
		return nil, err
	}
	return k, nil
}

// Reload reads the file again. On an error (ErrEmpty included) the keys
// read before stay in force, so a half-written edit never locks everyone out.
func (k *Keyring) Reload() error {
	fi, err := os.Stat(k.path)
	if err != nil {
		return fmt.Errorf("keys file: %w", err)
	}
	data, err := os.ReadFile(k.path)
	if err != nil {
		return fmt.Errorf("keys file: %w", err)
	}
	keys, err := Parse(data)
	if err != nil {
		return fmt.Errorf("keys file %s: %w", k.path, err)
	}
	byHash := make(map[string]Caller, len(keys))
	for _, key := range keys {
		byHash[strings.ToLower(key.SHA256)] = Caller{Name: key.Name, Access: key.Access, Buckets: key.Buckets}
	}
	k.mu.Lock()
	k.byHash, k.stamp = byHash, stamp(fi)
	k.mu.Unlock()
	return nil
}

func stamp(fi os.FileInfo) string { return fmt.Sprint(fi.Size(), fi.ModTime().UnixNano()) }

// Len is how many keys are in force.
func (k *Keyring) Len() int {
	k.mu.RLock()
	defer k.mu.RUnlock()
	return len(k.byHash)
}

// Authenticate returns the caller a secret belongs to. Only the secret's
// hash is compared, so the lookup's timing says nothing about the keys.
func (k *Keyring) Authenticate(secret string) (Caller, bool) {
	h := Hash(secret)
	k.mu.RLock()
	defer k.mu.RUnlock()
	c, ok := k.byHash[h]
	return c, ok
}

// Watch reloads the file whenever its size or modification time changes,
// checking every interval until ctx ends, and logs what happened. A file
// that cannot be read is tried again only once it changes.
func (k *Keyring) Watch(ctx context.Context, interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	k.mu.RLock()
	seen := k.stamp
	k.mu.RUnlock()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			seen = k.poll(seen)
		}
	}
}

// poll is one look of Watch: it reloads the file if it no longer looks as
// seen, and returns how it looks now.
func (k *Keyring) poll(seen string) string {
	now := "missing"
	if fi, err := os.Stat(k.path); err == nil {
		now = stamp(fi)
	}
	if now != seen {
		k.ReloadAndLog("changed")
	}
	return now
}

// ReloadAndLog reloads and logs the outcome; why says what prompted it.
func (k *Keyring) ReloadAndLog(why string) {
	err := k.Reload()
	switch {
	case errors.Is(err, ErrEmpty):
		// Most likely a rewrite caught half-way: its write changes the file again.
		k.log.Warn("keys_file_empty", "why", why, "path", k.path, "keys_in_force", k.Len())
	case err != nil:
		k.log.Error("keys_reload_failed", "why", why, "err", err, "keys_in_force", k.Len())
	default:
		k.log.Info("keys_reloaded", "why", why, "keys", k.Len())
	}
}

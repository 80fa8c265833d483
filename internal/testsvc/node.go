package testsvc

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// NodeModules installs the npm packages specs (as npm spells them:
// "tus-js-client@4", "openai@6") once into the user cache directory,
// under ferry-test/<the specs>, and returns that node_modules for NODE_PATH.
// Without Node the test fails under CI and skips elsewhere (scripts/test.sh
// installs nodejs and npm when they are missing).
//
// npm installs into a fresh directory that is then renamed into place, so
// a test run that stops half-way, or another one installing the same
// packages at once, never leaves a partial node_modules behind.
func NodeModules(t testing.TB, specs ...string) string {
	t.Helper()
	if len(specs) == 0 {
		t.Fatal("testsvc.NodeModules: no package named")
	}
	if _, err := exec.LookPath("node"); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("node is required under CI to run %s: install Node.js 18 or later (%v)", strings.Join(specs, ", "), err)
		}
		t.Skipf("node is not installed (needed for %s)", strings.Join(specs, ", "))
	}
	cache, err := os.UserCacheDir()
	if err != nil {
		cache = os.TempDir()
	}
	parent := filepath.Join(cache, "ferry-test")
	dir := filepath.Join(parent, nodeCacheName(specs))
	mods := filepath.Join(dir, "node_modules")
	if installed(mods, specs) {
		return mods
	}
	if err := os.MkdirAll(parent, 0o755); err != nil {
		t.Fatal(err)
	}
	tmp, err := os.MkdirTemp(parent, ".install-")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(tmp) // gone after the rename; left over only on failure
	args := append([]string{"install", "--prefix", tmp, "--no-audit", "--no-fund", "--loglevel=error"}, specs...)
	if out, err := exec.Command("npm", args...).CombinedOutput(); err != nil {
		t.Fatalf("npm install %s: %v\n%s", strings.Join(specs, " "), err, out)
	}
	if !installed(filepath.Join(tmp, "node_modules"), specs) {
		t.Fatalf("npm install %s left no package.json for them in %s", strings.Join(specs, " "), tmp)
	}
	if installed(mods, specs) {
		return mods // another run installed them meanwhile
	}
	_ = os.RemoveAll(dir) // a partial copy
	if err := os.Rename(tmp, dir); err != nil && !installed(mods, specs) {
		t.Fatalf("move the npm install into place: %v", err)
	}
	return mods
}

// nodeCacheName is the cache directory of a set of package specs:
// "tus-js-client@4" is tus-js-client-4, "a@1", "@s/b@2" is a-1+s-b-2.
func nodeCacheName(specs []string) string {
	parts := make([]string, len(specs))
	for i, s := range specs {
		s = strings.TrimPrefix(s, "@")
		parts[i] = strings.NewReplacer("@", "-", "/", "-", "\\", "-", "+", "-").Replace(s)
	}
	return strings.Join(parts, "+")
}

// packageName is a spec without its version: "@s/b@2" is "@s/b".
func packageName(spec string) string {
	if i := strings.LastIndex(spec, "@"); i > 0 {
		return spec[:i]
	}
	return spec
}

// installed reports whether every package in specs is in mods.
func installed(mods string, specs []string) bool {
	for _, s := range specs {
		if _, err := os.Stat(filepath.Join(mods, filepath.FromSlash(packageName(s)), "package.json")); err != nil {
			return false
		}
	}
	return true
}

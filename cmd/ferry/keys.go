package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/ferryhq/ferry/auth"
)

// keys makes API keys; it needs no server. new is its only subcommand, so
// ferry keys and ferry keys --help show new's help.
func (x *cli) keys(_ context.Context, args []string) error {
	fs := x.flags("keys new", "NAME --buckets PATTERNS --access read|write|admin [--append FILE]",
		"Makes an API key. Prints the key, which is shown once (keep it), and the entry for ferryd's\n"+
			"keys file (auth.keys_file), which holds only the key's SHA-256: ready to paste under the\n"+
			"file's keys: line, or added to FILE with --append. ferryd reads the file again within 2 s.")
	buckets := fs.String("buckets", "", "`patterns` of the buckets the key may use, ','-separated (e.g. 'photos,logs-*')")
	access := fs.String("access", "read", "read, write or admin")
	appendTo := fs.String("append", "", "add the entry to the keys `file` (created if missing) instead of printing it")
	if len(args) == 0 || args[0] != "new" {
		fs.Usage()
		return errUsage
	}
	if err := parse(fs, reorderFlags(args[1:]), 1, 1); err != nil {
		return err
	}
	a, err := auth.ParseAccess(*access)
	if err != nil {
		return fmt.Errorf("%w: --%v", errUsage, err)
	}
	var patterns []string
	for _, p := range strings.Split(*buckets, ",") {
		if p = strings.TrimSpace(p); p != "" {
			patterns = append(patterns, p)
		}
	}
	if len(patterns) == 0 && a != auth.Admin {
		return fmt.Errorf("%w: --buckets is empty: name the buckets the key may use (admin keys reach all)", errUsage)
	}
	secret, key := auth.NewKey(fs.Arg(0), patterns, a)
	if *appendTo != "" {
		if err := appendKey(*appendTo, key); err != nil {
			return err
		}
		fmt.Fprintf(x.stdout, "key: %s\n\n# added to %s as %s; ferryd reads the file again within 2 s, or on SIGHUP\n", secret, *appendTo, key.Name)
		return nil
	}
	entry, err := keysYAML(nil, key)
	if err != nil {
		return err
	}
	fmt.Fprintf(x.stdout, "key: %s\n\n# paste under keys: in ferryd's keys file (or use --append FILE); ferryd reads it within 2 s\n%s",
		secret, strings.TrimPrefix(string(entry), "keys:\n"))
	return nil
}

// appendKey adds k to the keys file at path, or creates the file. The file
// must be one ferryd would load, and must stay one: the result is checked
// the same way before it replaces the file.
func appendKey(path string, k auth.Key) error {
	if real, err := filepath.EvalSymlinks(path); err == nil {
		path = real // replace the file, not a link to it
	}
	mode := os.FileMode(0o644) // hashes only; ferryd may run as another user (the image's nonroot)
	old, err := os.ReadFile(path)
	switch {
	case errors.Is(err, os.ErrNotExist):
	case err != nil:
		return err
	default:
		st, err := os.Stat(path)
		if err != nil {
			return err
		}
		mode = st.Mode().Perm()
	}
	var have []auth.Key
	if len(old) > 0 { // a missing or empty file is a new one
		if have, err = auth.Parse(old); err != nil {
			return fmt.Errorf("%s is not a keys file ferryd can load (%v): --append adds to a keys file or creates a new one", path, err)
		}
	}
	for _, h := range have {
		if h.Name == k.Name {
			return fmt.Errorf("%s already has a key named %q: choose another NAME, or delete that entry first", path, k.Name)
		}
	}
	data, err := keysYAML(old, k)
	if err != nil {
		return err
	}
	if _, err := auth.Parse(data); err != nil { // a safety net: keysYAML keeps a keys file one
		return fmt.Errorf("adding to %s would leave a file ferryd cannot load (%v): add the entry by hand", path, err)
	}
	// Written beside it and renamed into place: ferryd polls the file and
	// must never read it half-written.
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, data, mode); err != nil {
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		_ = os.Remove(tmp)
		return err
	}
	return nil
}

// keysYAML is the keys file old with k added at the end of its keys list.
// Comments and the other entries' style stay; nil old gives a new file.
func keysYAML(old []byte, k auth.Key) ([]byte, error) {
	var doc yaml.Node
	if err := yaml.Unmarshal(old, &doc); err != nil {
		return nil, err
	}
	prefix := []byte(nil)
	if len(doc.Content) == 0 { // empty, or comments only: keep them and start the list
		prefix = old
		doc = yaml.Node{Kind: yaml.DocumentNode, Content: []*yaml.Node{{Kind: yaml.MappingNode}}}
	}
	root := doc.Content[0]
	var list *yaml.Node
	for i := 0; i+1 < len(root.Content); i += 2 {
		if root.Content[i].Value == "keys" {
			list = root.Content[i+1]
		}
	}
	if list == nil {
		list = &yaml.Node{}
		root.Content = append(root.Content, &yaml.Node{Kind: yaml.ScalarNode, Value: "keys"}, list)
	}
	if list.Kind != yaml.SequenceNode { // keys: with nothing after it
		*list = yaml.Node{Kind: yaml.SequenceNode}
	}
	list.Style &^= yaml.FlowStyle // keys: [] grows into a block list
	var entry yaml.Node
	if err := entry.Encode(k); err != nil {
		return nil, err
	}
	list.Content = append(list.Content, &entry)
	var out bytes.Buffer
	out.Write(prefix)
	enc := yaml.NewEncoder(&out)
	enc.SetIndent(2) // as the README writes the file
	if err := enc.Encode(&doc); err != nil {
		return nil, err
	}
	return out.Bytes(), enc.Close()
}

// reorderFlags moves flags before the positional arguments, so
// "keys new NAME --access write" parses as a user expects. A last flag
// without its value goes alone, so the parser says so instead of taking
// NAME as the value.
func reorderFlags(args []string) []string {
	var flags, rest []string
	for i := 0; i < len(args); i++ {
		if strings.HasPrefix(args[i], "-") {
			flags = append(flags, args[i])
			if strings.Contains(args[i], "=") {
				continue
			}
			if i+1 == len(args) {
				return flags
			}
			flags = append(flags, args[i+1])
			i++
			continue
		}
		rest = append(rest, args[i])
	}
	return append(flags, rest...)
}

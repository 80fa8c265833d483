package config

import (
	"fmt"
	"io"
	"os"
	"reflect"
	"strings"
	"testing"
	"time"
)

// readmeRow is one row of README's settings table.
type readmeRow struct{ env, def string }

// readmeTable reads the table under "## Configuration", keyed by YAML key.
func readmeTable(t *testing.T) map[string]readmeRow {
	t.Helper()
	data, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	_, section, ok := strings.Cut(string(data), "\n## Configuration\n")
	if !ok {
		t.Fatal("README has no ## Configuration section")
	}
	section, _, _ = strings.Cut(section, "\n## ")
	rows := map[string]readmeRow{}
	for _, line := range strings.Split(section, "\n") {
		cells := strings.Split(line, "|")
		if len(cells) != 6 || !strings.HasPrefix(strings.TrimSpace(cells[1]), "`") {
			continue // not a settings row (header, rule or prose)
		}
		key := strings.Trim(strings.TrimSpace(cells[1]), "`")
		if _, dup := rows[key]; dup {
			t.Errorf("README lists %s twice", key)
		}
		rows[key] = readmeRow{env: strings.TrimSpace(cells[2]), def: strings.TrimSpace(cells[4])}
	}
	return rows
}

// documented is how README's default column must show v: a zero string or
// list reads "empty…" (or nothing), everything else (a zero number too)
// appears in backticks.
func documented(v reflect.Value) (want string, empty bool) {
	switch x := v.Interface().(type) {
	case time.Duration:
		return "`" + formatDuration(x) + "`", false
	case bool, int, int64:
		return fmt.Sprintf("`%v`", x), false
	}
	if v.IsZero() || v.Kind() == reflect.Slice && v.Len() == 0 {
		return "", true
	}
	return fmt.Sprintf("`%v`", v.Interface()), false
}

// TestREADMEListsEverySetting keeps README's settings table true: every YAML
// key has a row, naming its environment variable and its default.
func TestREADMEListsEverySetting(t *testing.T) {
	rows := readmeTable(t)
	d := Default()
	keys := map[string]bool{}
	for _, s := range fields(reflect.ValueOf(&d).Elem(), "") {
		keys[s.key] = true
		row, ok := rows[s.key]
		if !ok {
			t.Errorf("README's settings table has no row for %s", s.key)
			continue
		}
		want, empty := documented(s.value)
		switch {
		case empty && row.def != "" && !strings.HasPrefix(row.def, "empty"):
			t.Errorf("README: %s defaults to %q; its default is empty", s.key, row.def)
		case !empty && !strings.HasPrefix(row.def, want):
			t.Errorf("README: %s defaults to %q; want %s", s.key, row.def, want)
		}
	}
	for key := range rows {
		if !keys[key] {
			t.Errorf("README lists %s, which is not a setting", key)
		}
	}
	for _, e := range envVars {
		if row, ok := rows[e.key]; ok && !strings.HasPrefix(row.env, "`"+e.name+"`") {
			t.Errorf("README: %s's environment variable is %s; want `%s`", e.key, row.env, e.name)
		}
	}
}

// The README's example ferry.yaml is one ferryd starts with.
func TestREADMEExampleFileValid(t *testing.T) {
	data, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	_, after, ok := strings.Cut(string(data), "\nExample `ferry.yaml`")
	_, after, ok2 := strings.Cut(after, "```yaml\n")
	example, _, ok3 := strings.Cut(after, "```")
	if !ok || !ok2 || !ok3 {
		t.Fatal("README has no example ferry.yaml")
	}
	cfg, err := Load([]string{"--config", writeFile(t, example)}, env(), io.Discard)
	if err == nil {
		err = cfg.Validate()
	}
	if err != nil {
		t.Fatalf("ferryd would refuse the README's example:\n%s\n%v", example, err)
	}
}

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

// setting is one leaf of Config: its YAML key and its value.
type setting struct {
	key   string
	value reflect.Value
}

// settings lists Config's leaves by YAML key, e.g. "sessions.ttl".
func settings(v reflect.Value, prefix string) []setting {
	var out []setting
	for i := range v.NumField() {
		f := v.Type().Field(i)
		key := prefix + strings.Split(f.Tag.Get("yaml"), ",")[0]
		if f.Type.Kind() == reflect.Struct && f.Type != reflect.TypeFor[time.Duration]() {
			out = append(out, settings(v.Field(i), key+".")...)
			continue
		}
		out = append(out, setting{key, v.Field(i)})
	}
	return out
}

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
// list reads "empty…" (or nothing), everything else appears in backticks.
func documented(v reflect.Value) (want string, empty bool) {
	switch x := v.Interface().(type) {
	case time.Duration:
		s := x.String()
		if strings.HasSuffix(s, "m0s") { // 1m0s → 1m
			s = strings.TrimSuffix(s, "0s")
		}
		if strings.HasSuffix(s, "h0m") { // 24h0m → 24h
			s = strings.TrimSuffix(s, "0m")
		}
		return "`" + s + "`", false
	case bool:
		return fmt.Sprintf("`%v`", x), false
	}
	if v.IsZero() || v.Kind() == reflect.Slice && v.Len() == 0 {
		return "", true
	}
	return fmt.Sprintf("`%v`", v.Interface()), false
}

// envKey finds the setting an environment variable sets, by loading a value
// through it and seeing which field moved off its default.
func envKey(t *testing.T, name string) string {
	t.Helper()
	for _, val := range []string{"7s", "7", "true"} { // a duration, a number or string, a bool
		cfg, err := Load(nil, env(name, val), io.Discard)
		if err != nil {
			continue
		}
		got, def := settings(reflect.ValueOf(cfg), ""), settings(reflect.ValueOf(Default()), "")
		for i := range got {
			if !reflect.DeepEqual(got[i].value.Interface(), def[i].value.Interface()) {
				return got[i].key
			}
		}
	}
	t.Fatalf("setting %s changes no field", name)
	return ""
}

// TestREADMEListsEverySetting keeps README's settings table true: every YAML
// key has a row, naming its environment variable and its default.
func TestREADMEListsEverySetting(t *testing.T) {
	rows := readmeTable(t)
	all := settings(reflect.ValueOf(Default()), "")
	keys := map[string]bool{}
	for _, s := range all {
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
	for _, name := range EnvNames() {
		key := envKey(t, name)
		if row, ok := rows[key]; ok && !strings.HasPrefix(row.env, "`"+name+"`") {
			t.Errorf("README: %s's environment variable is %s; want `%s`", key, row.env, name)
		}
	}
}

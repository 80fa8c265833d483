package config

import (
	"fmt"
	"net/url"
	"reflect"
	"strings"
	"time"
)

// Setting is one setting as ferryd config prints it.
type Setting struct {
	Key    string // the YAML key, e.g. "sessions.ttl"
	Value  string // as the YAML file would take it; a secret is masked
	Source string // default, file PATH, env NAME or flag --name
}

// Masked stands for a secret that is set.
const Masked = "********"

// Settings lists every setting of c in the struct's order, with where its
// value came from.
func (c Config) Settings(src Sources) []Setting {
	var out []Setting
	for _, f := range fields(reflect.ValueOf(&c).Elem(), "") {
		v := format(f.value)
		if f.secret && !f.value.IsZero() {
			v = Masked
		}
		out = append(out, Setting{Key: f.key, Value: v, Source: src.Of(f.key)})
	}
	return out
}

// field is one setting: a leaf of Config.
type field struct {
	key    string // the YAML key, e.g. "sessions.ttl"
	value  reflect.Value
	secret bool // tagged secret:"true": never printed
}

// fields lists v's settings by YAML key; v must be a Config or a part of
// one, addressable to set them.
func fields(v reflect.Value, prefix string) []field {
	var out []field
	for i := range v.NumField() {
		f := v.Type().Field(i)
		key := prefix + strings.Split(f.Tag.Get("yaml"), ",")[0]
		if f.Type.Kind() == reflect.Struct && f.Type != reflect.TypeFor[time.Duration]() {
			out = append(out, fields(v.Field(i), key+".")...)
			continue
		}
		out = append(out, field{key: key, value: v.Field(i), secret: f.Tag.Get("secret") == "true"})
	}
	return out
}

// lookupField finds the setting at key in cfg.
func lookupField(cfg *Config, key string) (field, bool) {
	for _, f := range fields(reflect.ValueOf(cfg).Elem(), "") {
		if f.key == key {
			return f, true
		}
	}
	return field{}, false
}

// format writes a value as the YAML file would take it. A URL's password
// (redis://user:pass@host) is masked wherever it appears.
func format(v reflect.Value) string {
	switch x := v.Interface().(type) {
	case time.Duration:
		return formatDuration(x)
	case string:
		if x == "" {
			return `""`
		}
		if u, err := url.Parse(x); err == nil && u.User != nil {
			if _, ok := u.User.Password(); ok {
				return u.Redacted()
			}
		}
		return x
	case []string:
		return "[" + strings.Join(x, ", ") + "]"
	}
	return fmt.Sprint(v.Interface())
}

// formatDuration writes d as a person would: 24h, 1m, 30s, 1h30m (Go's
// String writes 24h0m0s).
func formatDuration(d time.Duration) string {
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}

package textindex

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
)

func TestValidateAttributes(t *testing.T) {
	many := map[string]any{}
	for i := range 17 {
		many[fmt.Sprintf("k%d", i)] = i
	}
	sixteen := map[string]any{}
	for i := range 16 {
		sixteen[fmt.Sprintf("k%d", i)] = true
	}
	for _, tc := range []struct {
		name    string
		attrs   map[string]any
		wantErr string
	}{
		{"nil", nil, ""},
		{"all kinds", map[string]any{"s": "x", "f": 1.5, "n": json.Number("12"), "i": 3, "b": false}, ""},
		{"16 keys", sixteen, ""},
		{"17 keys", many, "attributes has 17 keys; at most 16 are allowed"},
		{"key of 64", map[string]any{strings.Repeat("k", 64): 1}, ""},
		{"key of 64 runes", map[string]any{strings.Repeat("é", 64): 1}, ""},
		{"key of 65", map[string]any{strings.Repeat("k", 65): 1}, "is 65 characters long; keys must be 1 to 64"},
		{"empty key", map[string]any{"": 1}, `key "" is 0 characters long`},
		{"string of 512", map[string]any{"s": strings.Repeat("é", 512)}, ""},
		{"string of 513", map[string]any{"s": strings.Repeat("x", 513)}, `the value of "s" is 513 characters long; strings may have at most 512`},
		{"null", map[string]any{"a": 1, "z": nil}, `the value of "z" is null`},
		{"list", map[string]any{"tags": []any{"a"}}, `"tags" is a list`},
		{"object", map[string]any{"o": map[string]any{}}, `"o" is an object`},
		{"bad json.Number", map[string]any{"n": json.Number("abc")}, `"n" is "abc", not a number`},
		{"NaN", map[string]any{"n": nan()}, `"n" is NaN`},
		{"go type", map[string]any{"t": struct{}{}}, "of Go type struct {}"},
		{"first bad key in order", map[string]any{"b": nil, "a": nil}, `"a"`},
	} {
		err := ValidateAttributes(tc.attrs)
		switch {
		case tc.wantErr == "" && err != nil:
			t.Errorf("%s: unexpected error %v", tc.name, err)
		case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)):
			t.Errorf("%s: error %v, want one containing %q", tc.name, err, tc.wantErr)
		}
	}
}

func nan() float64 { z := 0.0; return z / z }

func TestParseFilterErrors(t *testing.T) {
	deep := `{"type":"eq","key":"a","value":1}`
	for range 8 {
		deep = `{"type":"and","filters":[` + deep + `]}`
	}
	for _, tc := range []struct{ raw, want string }{
		{`{`, "invalid filter: not valid JSON"},
		{`[]`, "invalid filter: must be an object"},
		{`{}`, "type: missing; use one of eq, ne, gt, gte, lt, lte, and, or"},
		{`{"type":1}`, "type: must be a string"},
		{`{"type":"like","key":"a","value":"b"}`, `type: unknown type "like"`},
		{`{"type":"eq","value":1}`, "key: missing"},
		{`{"type":"eq","key":"","value":1}`, "key: must be a non-empty string"},
		{`{"type":"eq","key":3,"value":1}`, "key: must be a non-empty string"},
		{`{"type":"eq","key":"a"}`, "value: missing"},
		{`{"type":"eq","key":"a","value":null}`, "value: must be a string, number or boolean, not null"},
		{`{"type":"eq","key":"a","value":[1]}`, "value: must be a string, number or boolean, not a list"},
		{`{"type":"eq","key":"a","value":{}}`, "not an object"},
		{`{"type":"eq","key":"a","value":1e999}`, "value: number 1e999 is out of range"},
		{`{"type":"gt","key":"a","value":true}`, "value: gt compares numbers or strings, not booleans"},
		{`{"type":"eq","key":"a","value":1,"filters":[]}`, "filters: unknown field; this filter takes type, key, value"},
		{`{"type":"and"}`, `filters: missing; "and" needs a list of filters`},
		{`{"type":"or","filters":{}}`, "filters: must be a list of filters"},
		{`{"type":"or","filters":null}`, "filters: must be a list of filters"},
		{`{"type":"and","filters":[]}`, "filters: must have at least one filter"},
		{`{"type":"and","filters":[],"key":"a"}`, "key: unknown field; this filter takes type, filters"},
		{`{"type":"and","filters":[{"type":"eq","key":"a","value":1},{"type":"nope"}]}`, `filters[1].type: unknown type "nope"`},
		{`{"type":"or","filters":[{"type":"and","filters":[{"type":"eq","key":"k"}]}]}`, "filters[0].filters[0].value: missing"},
		{`{"type":"or","filters":[7]}`, "filters[0]: must be an object"},
		{deep, "nested more than 8 deep"},
	} {
		f, err := ParseFilter(json.RawMessage(tc.raw))
		if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.HasPrefix(err.Error(), "invalid filter: ") {
			t.Errorf("%s: %v, %v; want an error saying %q", tc.raw, f, err, tc.want)
		}
	}
	// Eight levels are allowed.
	ok := `{"type":"eq","key":"a","value":1}`
	for range 7 {
		ok = `{"type":"or","filters":[` + ok + `]}`
	}
	if _, err := ParseFilter(json.RawMessage(ok)); err != nil {
		t.Errorf("8 levels: %v", err)
	}
	for _, raw := range []string{"", "null", "  null \n", " "} {
		if f, err := ParseFilter(json.RawMessage(raw)); f != nil || err != nil {
			t.Errorf("%q: %v, %v; want nil, nil", raw, f, err)
		}
	}
}

func TestFilterMatch(t *testing.T) {
	attrs := map[string]any{
		"author":   "ada",
		"year":     1815.0,
		"pages":    json.Number("120"),
		"count":    3,
		"draft":    true,
		"date":     "2024-05-01",
		"nothing":  nil,
		"tags":     []any{"x"},
		"one":      1,
		"zero_int": 0,
	}
	for _, tc := range []struct {
		filter string
		want   bool
	}{
		{`{"type":"eq","key":"author","value":"ada"}`, true},
		{`{"type":"eq","key":"author","value":"Ada"}`, false},
		{`{"type":"eq","key":"year","value":1815}`, true},
		{`{"type":"eq","key":"one","value":1.0}`, true},
		{`{"type":"eq","key":"pages","value":120.0}`, true},
		{`{"type":"eq","key":"year","value":"1815"}`, false}, // kinds differ
		{`{"type":"eq","key":"draft","value":true}`, true},
		{`{"type":"eq","key":"draft","value":false}`, false},
		{`{"type":"ne","key":"draft","value":false}`, true},
		{`{"type":"eq","key":"zero_int","value":false}`, false},
		{`{"type":"ne","key":"author","value":"bob"}`, true},
		{`{"type":"ne","key":"author","value":"ada"}`, false},
		{`{"type":"ne","key":"missing","value":"ada"}`, true}, // documented: missing matches ne
		{`{"type":"ne","key":"year","value":"1815"}`, true},
		{`{"type":"eq","key":"missing","value":"ada"}`, false},
		{`{"type":"eq","key":"nothing","value":"ada"}`, false},
		{`{"type":"eq","key":"tags","value":"x"}`, false},
		{`{"type":"lte","key":"year","value":1815}`, true},
		{`{"type":"lt","key":"year","value":1815}`, false},
		{`{"type":"gte","key":"pages","value":120}`, true},
		{`{"type":"gt","key":"pages","value":119.5}`, true},
		{`{"type":"lt","key":"count","value":4}`, true},
		{`{"type":"gt","key":"missing","value":0}`, false},
		{`{"type":"lt","key":"missing","value":0}`, false},
		{`{"type":"gt","key":"date","value":"2024-01-01"}`, true}, // strings compare byte-wise
		{`{"type":"lt","key":"date","value":"2024-01-01"}`, false},
		{`{"type":"gt","key":"author","value":5}`, false}, // kinds differ
		{`{"type":"gt","key":"draft","value":0}`, false},
		{`{"type":"and","filters":[{"type":"eq","key":"author","value":"ada"},{"type":"lte","key":"year","value":1900}]}`, true},
		{`{"type":"and","filters":[{"type":"eq","key":"author","value":"ada"},{"type":"gt","key":"year","value":1900}]}`, false},
		{`{"type":"or","filters":[{"type":"eq","key":"author","value":"bob"},{"type":"eq","key":"draft","value":true}]}`, true},
		{`{"type":"or","filters":[{"type":"eq","key":"author","value":"bob"},{"type":"eq","key":"draft","value":false}]}`, false},
		{`{"type":"and","filters":[{"type":"or","filters":[{"type":"eq","key":"author","value":"bob"},{"type":"gte","key":"pages","value":100}]},{"type":"ne","key":"missing","value":1}]}`, true},
		{`{"type":"or","filters":[{"type":"and","filters":[{"type":"eq","key":"author","value":"ada"},{"type":"eq","key":"draft","value":false}]},{"type":"lt","key":"count","value":3}]}`, false},
	} {
		f, err := ParseFilter(json.RawMessage(tc.filter))
		if err != nil {
			t.Fatalf("%s: %v", tc.filter, err)
		}
		if got := f.Match(attrs); got != tc.want {
			t.Errorf("%s: Match = %v, want %v", tc.filter, got, tc.want)
		}
	}
	f, _ := ParseFilter(json.RawMessage(`{"type":"eq","key":"a","value":1}`))
	if f.Match(nil) {
		t.Errorf("nil attributes matched eq")
	}
}

func FuzzParseFilter(f *testing.F) {
	f.Add(`{"type":"eq","key":"a","value":1}`)
	f.Add(`{"type":"and","filters":[{"type":"lte","key":"n","value":2.5},{"type":"or","filters":[{"type":"ne","key":"b","value":true}]}]}`)
	f.Add(`{"type":"gt","key":"d","value":"2024"}`)
	f.Add(`[{"type":1}]`)
	f.Add(`null`)
	attrs := map[string]any{"a": 1, "b": true, "d": "2025", "n": json.Number("2")}
	f.Fuzz(func(t *testing.T, raw string) {
		flt, err := ParseFilter(json.RawMessage(raw))
		if err != nil {
			if !strings.HasPrefix(err.Error(), "invalid filter: ") {
				t.Fatalf("error %q lacks the prefix", err)
			}
			return
		}
		if flt != nil {
			flt.Match(attrs)
			flt.Match(nil)
		}
	})
}

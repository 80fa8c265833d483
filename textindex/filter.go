package textindex

import (
	"bytes"
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"math"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"
)

// OpenAI's limits on a vector store file's attributes, and ours on filter
// nesting (OpenAI documents none; 8 is far beyond what people write and
// keeps a hostile filter's cost small).
const (
	maxAttributes        = 16
	maxAttributeKeyLen   = 64
	maxAttributeValueLen = 512
	maxFilterDepth       = 8
)

// ValidateAttributes checks OpenAI's attribute rules: at most 16 keys, keys of
// 1 to 64 characters, values that are strings of at most 512 characters,
// numbers (float64 or json.Number as decoded from JSON, or int; finite) or
// booleans.
// The first bad key, in key order, is named in the error.
func ValidateAttributes(attrs map[string]any) error {
	if len(attrs) > maxAttributes {
		return fmt.Errorf("attributes has %d keys; at most %d are allowed", len(attrs), maxAttributes)
	}
	for _, k := range slices.Sorted(maps.Keys(attrs)) {
		if n := utf8.RuneCountInString(k); n == 0 || n > maxAttributeKeyLen {
			return fmt.Errorf("attributes: key %q is %d characters long; keys must be 1 to %d characters",
				abbreviate(k), n, maxAttributeKeyLen)
		}
		switch v := attrs[k].(type) {
		case bool:
		case string:
			if n := utf8.RuneCountInString(v); n > maxAttributeValueLen {
				return fmt.Errorf("attributes: the value of %q is %d characters long; strings may have at most %d",
					k, n, maxAttributeValueLen)
			}
		default:
			if _, ok := number(v); !ok {
				return fmt.Errorf("attributes: the value of %q is %s; values must be strings, finite numbers or booleans",
					k, describe(v))
			}
		}
	}
	return nil
}

// abbreviate keeps an overlong key from flooding an error message.
func abbreviate(s string) string {
	if utf8.RuneCountInString(s) <= maxAttributeKeyLen {
		return s
	}
	return string([]rune(s)[:maxAttributeKeyLen]) + "…"
}

func describe(v any) string {
	switch v := v.(type) {
	case nil:
		return "null"
	case []any:
		return "a list"
	case map[string]any:
		return "an object"
	case json.Number:
		return fmt.Sprintf("%q, not a number", string(v))
	case float64, float32:
		return fmt.Sprint(v)
	}
	return fmt.Sprintf("of Go type %T", v)
}

// number returns v as a float64 if it is a finite number.
func number(v any) (float64, bool) {
	var f float64
	switch v := v.(type) {
	case float64: // encoding/json's number
		f = v
	case json.Number: // a decoder's UseNumber
		var err error
		if f, err = strconv.ParseFloat(string(v), 64); err != nil {
			return 0, false
		}
	case int: // a Go literal
		f = float64(v)
	default:
		return 0, false
	}
	return f, !math.IsNaN(f) && !math.IsInf(f, 0)
}

// Filter is a parsed search filter. A nil Filter (from ParseFilter of an
// empty filter) is for the caller to treat as "match everything".
type Filter interface {
	Match(attrs map[string]any) bool
}

// ParseFilter parses OpenAI's search filters:
//
//   - comparison {"type": "eq|ne|gt|gte|lt|lte", "key": K, "value": V}, V a
//     string, number or boolean;
//   - compound {"type": "and|or", "filters": [at least one filter]}, nested at
//     most 8 filters deep.
//
// Unknown fields are errors, so a misspelt field is not silently ignored.
// Errors name the path from the filter object, as in "filters[1].type", and
// what is allowed there. Empty raw or "null" gives (nil, nil).
//
// Matching:
//   - eq and ne compare strings, numbers and booleans by value; numbers
//     numerically (1 equals 1.0), and values of different kinds are never
//     equal.
//   - gt, gte, lt and lte compare two numbers numerically or two strings
//     byte-wise (so ISO 8601 dates order correctly); booleans are refused
//     when parsing, and different kinds never match.
//   - A key that is missing, null or not a string, number or boolean matches
//     nothing, except ne, which matches: "status ne archived" keeps the files
//     that have no status.
func ParseFilter(raw json.RawMessage) (Filter, error) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || string(raw) == "null" {
		return nil, nil
	}
	return parseFilter(raw, "", 0)
}

const (
	filterTypes = "eq, ne, gt, gte, lt, lte, and, or"
	opEq        = "eq"
	opNe        = "ne"
	opGt        = "gt"
	opGte       = "gte"
	opLt        = "lt"
	opLte       = "lte"
	opAnd       = "and"
	opOr        = "or"
)

func filterError(path, format string, args ...any) error {
	if path == "" {
		return fmt.Errorf("invalid filter: "+format, args...)
	}
	return fmt.Errorf("invalid filter: %s: "+format, append([]any{path}, args...)...)
}

func parseFilter(raw []byte, path string, depth int) (Filter, error) {
	field := func(name string) string {
		if path == "" {
			return name
		}
		return path + "." + name
	}
	if depth >= maxFilterDepth {
		return nil, filterError(path, "filters are nested more than %d deep", maxFilterDepth)
	}
	obj, typ, err := filterObject(raw, path, field)
	if err != nil {
		return nil, err
	}
	switch typ {
	case opAnd, opOr:
		return parseCompound(obj, typ, field, depth)
	case opEq, opNe, opGt, opGte, opLt, opLte:
		return parseComparison(obj, typ, field)
	}
	return nil, filterError(field("type"), "unknown type %q; use one of %s", typ, filterTypes)
}

// filterObject decodes one filter object and its type, which decides what
// else it may hold.
func filterObject(raw []byte, path string, field func(string) string) (map[string]json.RawMessage, string, error) {
	var obj map[string]json.RawMessage
	if err := json.Unmarshal(raw, &obj); err != nil || obj == nil {
		var syn *json.SyntaxError
		if errors.As(err, &syn) {
			return nil, "", filterError(path, "not valid JSON: %s", jsonErrorText(err))
		}
		return nil, "", filterError(path, "must be an object with a type (%s)", filterTypes)
	}
	var typ string
	if t, ok := obj["type"]; !ok {
		return nil, "", filterError(field("type"), "missing; use one of %s", filterTypes)
	} else if json.Unmarshal(t, &typ) != nil {
		return nil, "", filterError(field("type"), "must be a string, one of %s", filterTypes)
	}
	return obj, typ, nil
}

// parseCompound parses an "and" or "or" of at least one filter, each one
// level deeper.
func parseCompound(obj map[string]json.RawMessage, typ string, field func(string) string, depth int) (Filter, error) {
	if err := onlyFields(obj, field, "filters"); err != nil {
		return nil, err
	}
	var list []json.RawMessage
	if f, ok := obj["filters"]; !ok {
		return nil, filterError(field("filters"), "missing; %q needs a list of filters", typ)
	} else if json.Unmarshal(f, &list) != nil || list == nil {
		return nil, filterError(field("filters"), "must be a list of filters")
	}
	if len(list) == 0 {
		return nil, filterError(field("filters"), "must have at least one filter")
	}
	c := &compound{and: typ == opAnd, filters: make([]Filter, len(list))}
	for i, r := range list {
		f, err := parseFilter(r, fmt.Sprintf("%s[%d]", field("filters"), i), depth+1)
		if err != nil {
			return nil, err
		}
		c.filters[i] = f
	}
	return c, nil
}

// parseComparison parses a comparison of one attribute with a value.
func parseComparison(obj map[string]json.RawMessage, typ string, field func(string) string) (Filter, error) {
	if err := onlyFields(obj, field, "key", "value"); err != nil {
		return nil, err
	}
	c := &comparison{op: typ}
	if k, ok := obj["key"]; !ok {
		return nil, filterError(field("key"), "missing; name the attribute to compare")
	} else if json.Unmarshal(k, &c.key) != nil || c.key == "" {
		return nil, filterError(field("key"), "must be a non-empty string")
	}
	v, ok := obj["value"]
	if !ok {
		return nil, filterError(field("value"), "missing; give a string, number or boolean")
	}
	var err error
	if c.value, err = parseScalar(v); err != nil {
		return nil, filterError(field("value"), "%v", err)
	}
	if c.value.kind == kindBool && typ != opEq && typ != opNe {
		return nil, filterError(field("value"), "%s compares numbers or strings, not booleans", typ)
	}
	return c, nil
}

func onlyFields(obj map[string]json.RawMessage, field func(string) string, allowed ...string) error {
	for _, k := range slices.Sorted(maps.Keys(obj)) {
		if k != "type" && !slices.Contains(allowed, k) {
			return filterError(field(k), "unknown field; this filter takes type, %s", strings.Join(allowed, ", "))
		}
	}
	return nil
}

func parseScalar(raw json.RawMessage) (scalar, error) {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return scalar{}, err
	}
	if s, ok := scalarOf(v); ok {
		return s, nil
	}
	if _, isNum := v.(json.Number); isNum {
		return scalar{}, fmt.Errorf("number %s is out of range", v)
	}
	return scalar{}, fmt.Errorf("must be a string, number or boolean, not %s", describe(v))
}

type kind uint8

const (
	kindString kind = iota + 1
	kindNumber
	kindBool
)

// scalar is an attribute or filter value reduced to one of three kinds.
type scalar struct {
	kind kind
	s    string
	f    float64
	b    bool
}

func scalarOf(v any) (scalar, bool) {
	switch v := v.(type) {
	case string:
		return scalar{kind: kindString, s: v}, true
	case bool:
		return scalar{kind: kindBool, b: v}, true
	}
	if f, ok := number(v); ok {
		return scalar{kind: kindNumber, f: f}, true
	}
	return scalar{}, false
}

// compare orders a against b; ok is false for kinds that do not order.
func (a scalar) compare(b scalar) (c int, ok bool) {
	switch {
	case a.kind != b.kind:
		return 0, false
	case a.kind == kindNumber:
		return cmp.Compare(a.f, b.f), true
	case a.kind == kindString:
		return strings.Compare(a.s, b.s), true
	case a.b == b.b:
		return 0, true
	}
	return 1, true // booleans are only compared for equality
}

type comparison struct {
	op    string
	key   string
	value scalar
}

func (c *comparison) Match(attrs map[string]any) bool {
	v, ok := scalarOf(attrs[c.key])
	if !ok {
		return c.op == opNe
	}
	d, ok := v.compare(c.value)
	if !ok {
		return c.op == opNe
	}
	switch c.op {
	case opEq:
		return d == 0
	case opNe:
		return d != 0
	case opGt:
		return d > 0
	case opGte:
		return d >= 0
	case opLt:
		return d < 0
	case opLte:
		return d <= 0
	}
	return false
}

type compound struct {
	and     bool
	filters []Filter
}

func (c *compound) Match(attrs map[string]any) bool {
	for _, f := range c.filters {
		if f.Match(attrs) != c.and {
			return !c.and
		}
	}
	return c.and
}

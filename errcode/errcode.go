// Package errcode is the one registry of error codes, after distribution's
// registry/api/errcode. Each code is registered once with its HTTP status;
// the domain packages return *Error values built from these codes and the
// HTTP layer renders them, natively as {status,title,detail} or in the OpenAI
// envelope {"error":{"message","type","code"}}. Anything that is not an
// *Error becomes ErrInternal.
package errcode

import (
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
)

// Code is a registered error kind.
type Code struct {
	Value  string // stable machine name, e.g. OFFSET_MISMATCH
	Title  string // short human summary
	Status int    // HTTP status
	// OpenAICode is the code in the OpenAI envelope: lower snake case as
	// OpenAI writes them (file_not_found), which clients branch on.
	OpenAICode string
}

// Option adjusts a code at registration.
type Option func(*Code)

// OpenAICode names the code in the OpenAI envelope when OpenAI's own name
// differs from the lower-cased value (invalid_api_key, rate_limit_exceeded).
func OpenAICode(code string) Option { return func(c *Code) { c.OpenAICode = code } }

var (
	mu       sync.Mutex
	registry = map[string]Code{}
)

// Register defines a code. Registering a value twice is a programming error.
// Its OpenAI code is the value in lower case without an OPENAI_ prefix
// (OPENAI_FILE_NOT_FOUND: file_not_found) unless an option names another.
func Register(value, title string, status int, opts ...Option) Code {
	mu.Lock()
	defer mu.Unlock()
	if _, dup := registry[value]; dup {
		panic("errcode: " + value + " registered twice")
	}
	c := Code{Value: value, Title: title, Status: status, OpenAICode: strings.ToLower(strings.TrimPrefix(value, "OPENAI_"))}
	for _, o := range opts {
		o(&c)
	}
	registry[value] = c
	return c
}

// All returns every registered code, sorted by value, as distribution's
// GetErrorAllDescriptors does: the documents are checked against it. Only
// the packages linked into the program have registered theirs.
func All() []Code {
	mu.Lock()
	defer mu.Unlock()
	all := make([]Code, 0, len(registry))
	for _, c := range registry {
		all = append(all, c)
	}
	slices.SortFunc(all, func(a, b Code) int { return strings.Compare(a.Value, b.Value) })
	return all
}

// The codes shared by every route. Feature packages register their own.
var (
	ErrInternal         = Register("INTERNAL", "Internal Server Error", http.StatusInternalServerError)
	ErrUnavailable      = Register("UNAVAILABLE", "Service Unavailable", http.StatusServiceUnavailable)
	ErrInvalidRequest   = Register("INVALID_REQUEST", "Bad Request", http.StatusBadRequest)
	ErrInvalidJSON      = Register("INVALID_JSON", "Malformed JSON", http.StatusBadRequest)
	ErrNotFound         = Register("NOT_FOUND", "Not Found", http.StatusNotFound)
	ErrMethodNotAllowed = Register("METHOD_NOT_ALLOWED", "Method Not Allowed", http.StatusMethodNotAllowed)
	ErrTooLarge         = Register("REQUEST_TOO_LARGE", "Request Entity Too Large", http.StatusRequestEntityTooLarge)
	ErrConflict         = Register("CONFLICT", "Conflict", http.StatusConflict)
	// ErrClientClosed: the client went away mid-request (nginx's 499). It
	// is logged and counted, never sent, and never a 5xx.
	ErrClientClosed = Register("CLIENT_CLOSED_REQUEST", "Client Closed Request", 499)
)

// Error is one occurrence of a code.
type Error struct {
	Code   Code
	Detail string         // what went wrong and what to fix
	Fields map[string]any // extra top-level fields in the native body, e.g. "offset"
	Cause  error          // logged, never shown to the client
}

// New makes an error of code c with a formatted detail.
func (c Code) New(format string, args ...any) *Error {
	return &Error{Code: c, Detail: fmt.Sprintf(format, args...)}
}

// Wrap makes an error of code c that keeps cause for logs and errors.Is.
func (c Code) Wrap(cause error, format string, args ...any) *Error {
	return &Error{Code: c, Detail: fmt.Sprintf(format, args...), Cause: cause}
}

// With returns a copy carrying an extra field in the native body.
func (e *Error) With(key string, value any) *Error {
	cp := *e
	cp.Fields = make(map[string]any, len(e.Fields)+1)
	for k, v := range e.Fields {
		cp.Fields[k] = v
	}
	cp.Fields[key] = value
	return &cp
}

func (e *Error) Error() string {
	if e.Cause != nil {
		return fmt.Sprintf("%s: %s: %v", e.Code.Value, e.Detail, e.Cause)
	}
	return e.Code.Value + ": " + e.Detail
}

func (e *Error) Unwrap() error { return e.Cause }

// Is matches any *Error of the same code, so errors.Is(err, ErrX.New("")) and
// Is(err, ErrX) both work.
func (e *Error) Is(target error) bool {
	t, ok := target.(*Error)
	return ok && t.Code.Value == e.Code.Value
}

// Is reports whether err is, or wraps, an *Error with code c.
func Is(err error, c Code) bool {
	var e *Error
	return errors.As(err, &e) && e.Code.Value == c.Value
}

// From returns err as an *Error; anything unregistered becomes ErrInternal
// with the original kept as Cause (and so never shown to the client).
func From(err error) *Error {
	var e *Error
	if errors.As(err, &e) {
		return e
	}
	return &Error{Code: ErrInternal, Detail: "an unexpected error occurred; the request id identifies it in the server log", Cause: err}
}

// Native is the body of an error on the native routes: the RFC 7807-like
// {status,title,detail} of the Error in Llama Stack's OpenAPI reference.
func (e *Error) Native() map[string]any {
	body := make(map[string]any, 4+len(e.Fields))
	for k, v := range e.Fields {
		body[k] = v
	}
	body["status"] = e.Code.Status
	body["title"] = e.Code.Title
	body["detail"] = e.Detail
	body["code"] = e.Code.Value
	return body
}

// OpenAIError is the OpenAI API's error envelope.
type OpenAIError struct {
	Error OpenAIErrorBody `json:"error"`
}

// OpenAIErrorBody is the inside of the envelope.
type OpenAIErrorBody struct {
	Message string  `json:"message"`
	Type    string  `json:"type"`
	Code    *string `json:"code"`
	Param   *string `json:"param"`
}

// OpenAI renders the error in the OpenAI envelope. The SDKs pick their typed
// error from the HTTP status; the type follows OpenAI's own naming.
func (e *Error) OpenAI() OpenAIError {
	typ := "invalid_request_error"
	switch {
	case e.Code.Status == http.StatusUnauthorized:
		typ = "authentication_error"
	case e.Code.Status == http.StatusForbidden:
		typ = "permission_error"
	case e.Code.Status == http.StatusTooManyRequests:
		typ = "requests" // what ran out, as OpenAI's 429 says ("requests" or "tokens")
	case e.Code.Status >= 500:
		typ = "server_error"
	}
	code := e.Code.OpenAICode
	return OpenAIError{Error: OpenAIErrorBody{Message: e.Detail, Type: typ, Code: &code}}
}

// Package page is the list object of the OpenAI APIs: one cursor-paged
// page of data, as the Files and the Vector stores APIs (packages openai
// and vectorstore) answer every list route.
package page

// List is OpenAI's cursor-paged list; data is [] when empty, never null.
type List[T any] struct {
	Object  string  `json:"object"`
	Data    []T     `json:"data"`
	FirstID *string `json:"first_id"`
	LastID  *string `json:"last_id"`
	HasMore bool    `json:"has_more"`
}

// New pages data, taking first_id and last_id from its ends with id.
func New[T any](data []T, more bool, id func(T) string) List[T] {
	l := List[T]{Object: "list", Data: data, HasMore: more}
	if l.Data == nil {
		l.Data = []T{}
	}
	if n := len(data); n > 0 {
		first, last := id(data[0]), id(data[n-1])
		l.FirstID, l.LastID = &first, &last
	}
	return l
}

package page

import (
	"encoding/json"
	"testing"
)

func TestNew(t *testing.T) {
	id := func(s string) string { return s }
	for _, c := range []struct {
		data []string
		more bool
		want string
	}{
		{nil, false, `{"object":"list","data":[],"first_id":null,"last_id":null,"has_more":false}`},
		{[]string{"a"}, true, `{"object":"list","data":["a"],"first_id":"a","last_id":"a","has_more":true}`},
		{[]string{"a", "b", "c"}, false, `{"object":"list","data":["a","b","c"],"first_id":"a","last_id":"c","has_more":false}`},
	} {
		b, err := json.Marshal(New(c.data, c.more, id))
		if err != nil || string(b) != c.want {
			t.Errorf("New(%q, %v) = %s, %v; want %s", c.data, c.more, b, err, c.want)
		}
	}
}

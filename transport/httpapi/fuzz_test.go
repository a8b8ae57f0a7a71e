package httpapi

import (
	"encoding/json"
	"testing"

	"github.com/fazt-realtime/fazt/domain"
)

// FuzzParsePublish feeds arbitrary bodies to the publish parser: it never
// panics, every refusal has a client-facing code, and an accepted body has
// a valid channel and valid JSON data within the limit.
func FuzzParsePublish(f *testing.F) {
	for _, s := range []string{
		`{"channel":"chat","data":{"text":"hi"}}`, `{"channel":"chat","data":1}`, `{"channel":"a b","data":1}`,
		`{"channel":"c"}`, `{"channel":"c","data":null}`, `[]`, `{"channel":1}`, `{"channel":"c","data":[[[[[]]]]]}`,
		`{"channel":"c","data":"` + string(make([]byte, 10)) + `"}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		p, err := parsePublish(b, 256, domain.DefaultMaxJSONDepth)
		if err != nil {
			if domain.CodeOf(err) == domain.CodeInternal {
				t.Fatalf("%q: internal error %v", b, err)
			}
			return
		}
		if domain.ValidateChannel(p.Channel) != nil || !json.Valid(p.Data) || len(p.Data) > 256 {
			t.Fatalf("%q accepted as %+v", b, p)
		}
	})
}

package ws

import (
	"encoding/json"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/fazt-realtime/fazt/domain"
)

func TestDecodeRequest(t *testing.T) {
	for _, tc := range []struct {
		in   string
		code domain.Code // "" for success
		id   string
	}{
		{`{"type":"subscribe","channel":"a","offset":3,"id":1}`, "", "1"},
		{`{"type":"ping","id":"x"}`, "", `"x"`},
		{`{"type":"ping"}  `, "", ""},
		{`{"type":"ping"}{"type":"ping"}`, domain.CodeBadRequest, ""},
		{`{"type":`, domain.CodeBadRequest, ""},
		{`{"id":7}`, domain.CodeBadRequest, "7"},
		{`{"type":"ping","id":[1]}`, domain.CodeBadRequest, ""},
		{`{"type":"ping","id":true}`, domain.CodeBadRequest, ""},
		{`{"type":"subscribe","offset":"x","id":2}`, domain.CodeBadRequest, "2"},
		{`{"type":"publish","data":` + strings.Repeat("[", 40) + strings.Repeat("]", 40) + `,"id":3}`, domain.CodeBadRequest, "3"},
		{`null`, domain.CodeBadRequest, ""},
		{``, domain.CodeBadRequest, ""},
	} {
		req, err := decodeRequest([]byte(tc.in), 32)
		if (err == nil) != (tc.code == "") || (err != nil && domain.CodeOf(err) != tc.code) {
			t.Errorf("%s: err %v, want code %q", tc.in, err, tc.code)
		}
		if string(req.ID) != tc.id {
			t.Errorf("%s: id %s, want %s", tc.in, req.ID, tc.id)
		}
	}
}

// TestDecodeRequestSaysWhy checks the error a client gets for two objects
// in one frame.
func TestDecodeRequestSaysWhy(t *testing.T) {
	_, err := decodeRequest([]byte(`{"type":"ping"} {"type":"ping"}`), 32)
	if err == nil || !strings.Contains(err.Error(), "one JSON object per frame") {
		t.Fatalf("err %v, want one JSON object per frame", err)
	}
}

// An id that is not UTF-8 is refused, and not echoed: the answer is a text
// frame, which a browser fails on such bytes (before, a pong echoed it).
func TestAnIdThatIsNotUTF8IsRefused(t *testing.T) {
	for _, frame := range []string{"{\"type\":\"ping\",\"id\":\"\xff\"}", "{\"type\":\"ping\",\"id\":\"\xff\",\"x\":}"} {
		req, err := decodeRequest([]byte(frame), 32)
		if domain.CodeOf(err) != domain.CodeBadRequest || len(req.ID) != 0 {
			t.Errorf("%q: id %q, err %v; want bad_request and no id", frame, req.ID, err)
		}
	}
}

// An error names the frame's id and channel where encoding/json reads none
// of it: a frame nested past its 10,000 levels, or one that is not JSON.
// Before, such an error came without them. Keys inside other values are
// not the frame's; of a key given twice, the last counts.
func TestAnErrorNamesTheIdOfAFrameNotRead(t *testing.T) {
	deep := `{"type":"publish","id":7,"channel":"c","data":` + strings.Repeat("[", 10001) + strings.Repeat("]", 10001) + `}`
	for _, tc := range []struct{ frame, id, channel string }{
		{deep, "7", "c"},
		{`{"type":"publish","id":"x","channel":"room","data":[1,}`, `"x"`, "room"},
		{`{"id":1, "id" : 2 ,"type":`, "2", ""},
		{`{"data":{"id":9,"channel":"no"},"type":"p"`, "", ""},
		{`{"data":"{\"id\":9","id":3,`, "3", ""},
		{`{"id":"a\"}`, "", ""},
		{`{"id":NaN}`, "", ""}, {`{"id":0x1p0,"x":}`, "", ""}, {`{"id":.5}`, "", ""}, {`{"id":Infinity}`, "", ""},
		{`[1,2]`, "", ""},
	} {
		req, err := decodeRequest([]byte(tc.frame), 32)
		if err == nil || string(req.ID) != tc.id || req.Channel != tc.channel {
			t.Errorf("%.60s: id %s, channel %q, err %v; want id %s, channel %q", tc.frame, req.ID, req.Channel, err, tc.id, tc.channel)
		}
	}
}

// FuzzDecodeRequest feeds arbitrary frames to the decoder: it must never
// panic, every error must carry a protocol code other than internal, and
// an accepted frame must have a type and an id that is a number or string.
// Its plain path must give what encoding/json gives, error included, at
// any depth limit.
func FuzzDecodeRequest(f *testing.F) {
	for _, s := range []string{
		`{"type":"subscribe","channel":"chat","offset":40,"id":1}`,
		`{"type":"subscribe","channel":"chat","last":5}`,
		`{"type":"subscribe","channel":"chat","since":1700000000000,"epoch":"ab"}`,
		`{"type":"publish","channel":"c","data":{"text":"hi","n":[1,2,{"x":null}]},"id":"p"}`,
		`{"type":"unsubscribe","channel":"c"}`,
		`{"type":"members","channel":"presence-r"}`,
		`{"type":"ping"}`, `{"type":"pong"}`, `{"type":"subscribe","channel":"private-x","token":"a.b.c"}`,
		`{"type":"x","id":1e400}`, `{"type":"\u0000"}`, `[[[[`, `"\\"`, `{"a":"\"{"}`,
		// At the plain path's edges.
		` { "type" : "publish" , "data" : [ "}" , "\\\"" ] , "id" : -0 } `,
		`{"type":"p","data":"a\"}b","id":"x"}`, `{"type":"p","data":"\uZZZZ"}`,
		`{"type":"p","data":{"a":[1,{"b":[2]}]}}`, `{"type":"p","data":{"a":}}`, `{"type":"p","data":{}}x`,
		`{"type":"a","type":"b","offset":1,"offset":2}`, `{"Type":"a"}`, `{"type":"a","extra":1}`,
		`{"type":"p","data":[[]],"data":{}}`, `{"type":"p","data":{},"data":[[[]]]}`,
		`{"type":"s","offset":999999999999999999}`, `{"type":"s","offset":-12}`, `{"type":"s","offset":9223372036854775808}`,
		`{"type":"s","offset":-12,"last":0,"since":01}`, `{"type":"s","offset":1.0}`, `{"type":"s","offset":1e2}`,
		`{"type":"s","offset":null}`, `{"type":"s","id":true}`, `{"type":"s","id":"a\u00e9"}`, "{\"type\":\"\xc3\xa9\"}",
		"{\"type\":\"ping\",\"id\":\"\xff\"}", "{\"type\":\"ping\",\"id\":\"\xff\",\"x\":}", `{"id":NaN}`, `{"type":"p","id":-Inf`,
		`{"type":"s",}`, `{,"type":"s"}`, `{"type":"s"`, `{}`, `{"type":"s"}{}`, `{"type":"s","data":1}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		req, err := decodeRequest(b, 32)
		for _, depth := range []int{0, 1, 2, 32} {
			got, gotErr := decodeRequest(b, depth)
			want, wantErr := decodeJSON(b, depth)
			if !reflect.DeepEqual(got, want) || fmt.Sprint(gotErr) != fmt.Sprint(wantErr) {
				t.Fatalf("%q at depth %d: decoded %+v, %v; encoding/json gives %+v, %v", b, depth, got, gotErr, want, wantErr)
			}
		}
		if _, merr := json.Marshal(struct {
			ID json.RawMessage `json:"id,omitempty"`
		}{req.ID}); merr != nil {
			t.Fatalf("%q: the answer cannot echo its id %s: %v", b, req.ID, merr)
		}
		if err != nil {
			if c := domain.CodeOf(err); c == domain.CodeInternal {
				t.Fatalf("%q: internal error %v", b, err)
			}
			if len(req.ID) > 0 && !validID(req.ID) {
				t.Fatalf("%q: echoes an invalid id %s", b, req.ID)
			}
			return
		}
		if req.Type == "" || !validID(req.ID) {
			t.Fatalf("%q accepted with type %q id %s", b, req.Type, req.ID)
		}
		if len(req.ID) > 0 && (!json.Valid(req.ID) || !utf8.Valid(req.ID)) {
			t.Fatalf("%q: id %s is not JSON of UTF-8", b, req.ID)
		}
	})
}

// TestDecodeRequestTakesThePlainPath checks that the frames clients send
// most do not fall back to encoding/json, and what the plain path leaves
// to it.
func TestDecodeRequestTakesThePlainPath(t *testing.T) {
	for _, tc := range []struct {
		frame string
		plain bool
	}{
		{`{"type":"subscribe","channel":"room-1","offset":0,"id":1}`, true},
		{`{"type":"subscribe","channel":"room-1","last":20,"id":"s1"}`, true},
		{`{"type":"publish","channel":"room-1","data":{"text":"hi \"you\""},"id":7}`, true},
		{`{"type":"unsubscribe","channel":"room-1"}`, true},
		{`{"type":"ping"}`, true},
		{`{"type":"publish","channel":"room-1","data":{"t":"a\"}"},"id":-3}`, true},
		{`{"type":"subscribe","channel":"room-1","offset":-1}`, true},
		{`{"type":"publish","channel":"room-1","data":42}`, false},      // data that is a number
		{`{"type":"subscribe","channel":"caf\u00e9"}`, false},           // an escape
		{`{"type":"subscribe","channel":"room-1","offset":1e3}`, false}, // an exponent
		{`{"type":"subscribe","channel":"room-1","offset":null}`, false},
		{`{"type":"subscribe","Channel":"room-1"}`, false}, // Unmarshal matches keys in any case
		{`{"type":"subscribe","channel":"room-1"} {}`, false},
		{`{"type":"publish","data":[[]],"data":{}}`, false}, // a repeated key: the first data must be depth-checked too
	} {
		var req request
		if _, got := decodePlain([]byte(tc.frame), &req); got != tc.plain {
			t.Errorf("%s: plain path %v, want %v", tc.frame, got, tc.plain)
		}
	}
}

func TestCheckChannelToken(t *testing.T) {
	secret := "s3cret"
	good := signToken(t, secret, map[string]any{"channel": "private-x"})
	for _, tc := range []struct {
		name, secret, token, channel, client string
		ok                                   bool
	}{
		{"right token", secret, good, "private-x", "c1", true},
		{"no secret", "", good, "private-x", "c1", false},
		{"no token", secret, "", "private-x", "c1", false},
		{"wrong secret", secret, signToken(t, "other", map[string]any{"channel": "private-x"}), "private-x", "c1", false},
		{"other channel", secret, signToken(t, secret, map[string]any{"channel": "private-y"}), "private-x", "c1", false},
		{"bound to this client", secret, signToken(t, secret, map[string]any{"channel": "private-x", "client": "c1"}), "private-x", "c1", true},
		{"bound to this app", secret, signToken(t, secret, map[string]any{"channel": "private-x", "app": "chat"}), "private-x", "c1", true},
		{"bound to another app", secret, signToken(t, secret, map[string]any{"channel": "private-x", "app": "shop"}), "private-x", "c1", false},
		{"bound to another client", secret, signToken(t, secret, map[string]any{"channel": "private-x", "client": "c2"}), "private-x", "c1", false},
		{"expired", secret, signToken(t, secret, map[string]any{"channel": "private-x", "exp": 1000}), "private-x", "c1", false},
		{"alg none", secret, "eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0.eyJjaGFubmVsIjoicHJpdmF0ZS14In0.", "private-x", "c1", false},
		{"garbage", secret, "not.a.jwt", "private-x", "c1", false},
	} {
		exp, err := checkChannelToken(tc.secret, tc.token, "chat", tc.channel, tc.client)
		if (err == nil) != tc.ok || !exp.IsZero() {
			t.Errorf("%s: %v", tc.name, err)
		}
		if err != nil && domain.CodeOf(err) != domain.CodeNotAllowed {
			t.Errorf("%s: code %s", tc.name, domain.CodeOf(err))
		}
	}
	// A token's expiry is returned: the subscription ends then.
	at := time.Now().Add(time.Hour).Truncate(time.Second)
	if exp, err := checkChannelToken(secret, signToken(t, secret, map[string]any{"channel": "private-x", "exp": at.Unix()}), "chat", "private-x", "c1"); err != nil || !exp.Equal(at) {
		t.Errorf("a token expiring at %v: %v, %v", at, exp, err)
	}
}

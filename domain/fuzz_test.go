package domain

import (
	"encoding/json"
	"strings"
	"testing"
)

// FuzzValidateChannel checks the validator against the rule written out
// plainly: 1 to 255 bytes, each from the channel alphabet.
func FuzzValidateChannel(f *testing.F) {
	for _, s := range []string{"chat", "presence-room", "private-a:b@c/d=e.f_g", "", " ", "é", strings.Repeat("a", 256), "a\x00b"} {
		f.Add(s)
	}
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-:.@/="
	f.Fuzz(func(t *testing.T, s string) {
		want := len(s) >= 1 && len(s) <= 255
		for i := 0; i < len(s) && want; i++ {
			want = strings.IndexByte(alphabet, s[i]) >= 0
		}
		err := ValidateChannel(s)
		if (err == nil) != want {
			t.Fatalf("%q: err %v, want valid=%v", s, err, want)
		}
		if err != nil && CodeOf(err) != CodeInvalidChannel {
			t.Fatalf("%q: code %s", s, CodeOf(err))
		}
	})
}

// FuzzCheckDepth checks the bracket counter against encoding/json on valid
// JSON: a document CheckDepth accepts at depth d decodes, and one it
// refuses really nests deeper than d.
func FuzzCheckDepth(f *testing.F) {
	for _, s := range []string{`{}`, `[[[]]]`, `{"a":"[[[["}`, `{"a":"\"[["}`, `[{"a":[{"b":[]}]}]`, `"\\"`, `{"a":"\"[[[[[[\""}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		err := CheckDepth(b, 4)
		if !json.Valid(b) {
			return
		}
		if got := depthOf(b); (err == nil) != (got <= 4) {
			t.Fatalf("%q: depth %d, CheckDepth(4) = %v", b, got, err)
		}
	})
}

func depthOf(b []byte) int {
	var v any
	if json.Unmarshal(b, &v) != nil {
		return -1
	}
	var walk func(v any) int
	walk = func(v any) int {
		switch x := v.(type) {
		case map[string]any:
			d := 0
			for _, e := range x {
				d = max(d, walk(e))
			}
			return d + 1
		case []any:
			d := 0
			for _, e := range x {
				d = max(d, walk(e))
			}
			return d + 1
		}
		return 0
	}
	return walk(v)
}

// TestStringEnd checks where a JSON string ends: at the first quote no
// backslash escapes, or at the end of the input if none does.
func TestStringEnd(t *testing.T) {
	for _, tc := range []struct {
		in   string // from just after the opening quote
		want int
	}{
		{`abc"rest`, 4},
		{`"`, 1},
		{`a\"b"`, 5},
		{`a\\"b`, 4},
		{`\\\"x"`, 6},
		{`abc`, 3},
		{`abc\`, 4},
	} {
		if got := StringEnd([]byte(tc.in), 0); got != tc.want {
			t.Errorf("StringEnd(%q) = %d, want %d", tc.in, got, tc.want)
		}
	}
}

// FuzzCheckNumbers checks CheckNumbers against encoding/json on valid
// JSON: a document decodes into Go values (float64 numbers) exactly when
// CheckNumbers accepts it.
func FuzzCheckNumbers(f *testing.F) {
	for _, s := range []string{`1e400`, `{"n":-1e400}`, `[1e-400]`, `{"a":"1e400"}`, `1.7976931348623157e308`, `1.8e308`, `123` + strings.Repeat("0", 320), `[0.5E+2,-0]`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		err := CheckNumbers(b)
		if !json.Valid(b) {
			return
		}
		var v any
		if jerr := json.Unmarshal(b, &v); (err == nil) != (jerr == nil) {
			t.Fatalf("%q: CheckNumbers %v, json.Unmarshal %v", b, err, jerr)
		}
	})
}

// FuzzStringEnd checks StringEnd, which jumps from quote to quote,
// against a walk of every byte that skips what each backslash escapes.
func FuzzStringEnd(f *testing.F) {
	for _, s := range []string{`abc"`, `a\"b"`, `a\\"b"`, `\\\"x"`, `\`, `\"`, `"`, ``, `a\\\\"`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		want := len(b)
		for i := 0; i < len(b); i++ {
			if b[i] == '\\' {
				i++
			} else if b[i] == '"' {
				want = i + 1
				break
			}
		}
		if got := StringEnd(b, 0); got != want {
			t.Fatalf("%q: %d, want %d", b, got, want)
		}
	})
}

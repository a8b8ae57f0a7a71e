package ws

import (
	"encoding/json"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/fazt-realtime/fazt/domain"
)

// request is any client frame.
type request struct {
	Type    string          `json:"type"`
	ID      json.RawMessage `json:"id,omitempty"`
	Channel string          `json:"channel"`
	Offset  *int64          `json:"offset"`
	Last    *int64          `json:"last"`
	Since   *int64          `json:"since"`
	Epoch   string          `json:"epoch"`
	Token   string          `json:"token"`
	Data    json.RawMessage `json:"data"`
}

// decodeRequest parses one client frame. On error it still returns the
// request's id when one could be read, so that the error can echo it. It
// never panics, whatever the input (see FuzzDecodeRequest).
func decodeRequest(body []byte, maxDepth int) (request, error) {
	// The frames clients send most take the plain path; its result is
	// decodeJSON's (FuzzDecodeRequest compares them). The object itself is
	// one level, its other values but data are flat, and decodePlain
	// returns how deep data nests.
	var req request
	if depth, ok := decodePlain(body, &req); ok && 1+depth <= maxDepth {
		return checked(req)
	}
	return decodeJSON(body, maxDepth)
}

// decodeJSON is decodeRequest for any frame, through encoding/json.
func decodeJSON(body []byte, maxDepth int) (req request, err error) {
	if err := domain.CheckDepth(body, maxDepth); err != nil {
		return peek(body), err
	}
	// Unmarshal, unlike a Decoder, refuses anything after the object and
	// allocates no reader and buffer of its own.
	if err := json.Unmarshal(body, &req); err != nil {
		msg := err.Error()
		if strings.Contains(msg, "after top-level value") {
			msg = "one JSON object per frame"
		}
		return peek(body), domain.Errorf(domain.CodeBadRequest, "malformed frame: %s", msg)
	}
	return checked(req)
}

// checked checks what JSON alone does not: the id's kind and the type's
// presence.
func checked(req request) (request, error) {
	if !validID(req.ID) {
		return request{}, domain.Errorf(domain.CodeBadRequest, "id must be a number or a string of UTF-8")
	}
	if req.Type == "" {
		return req, domain.Errorf(domain.CodeBadRequest, "frame has no type")
	}
	return req, nil
}

// peek returns the id and the channel of a frame that is not a request the
// server takes (a field of the wrong kind, too deep, not JSON), for its
// error to name: a client that sends several without ids can still tell
// which one failed. A channel that is not a string is left out.
func peek(body []byte) request {
	var r struct {
		ID      json.RawMessage `json:"id"`
		Channel json.RawMessage `json:"channel"`
	}
	if json.Unmarshal(body, &r) != nil {
		// Not JSON, or nested past what encoding/json reads (10,000
		// levels): the top level alone is looked at.
		r.ID, r.Channel = topLevel(body)
	}
	var req request
	if validID(r.ID) {
		req.ID = r.ID
	}
	if len(r.Channel) > 0 && r.Channel[0] == '"' {
		json.Unmarshal(r.Channel, &req.Channel)
	}
	return req
}

// topLevel finds the values of the keys id and channel, spelled so, at the
// top level of the object b (the last of each), stepping over every other
// value without reading into it. It stops at the first thing it does not
// expect, with what it found before. What it finds is not checked: the
// caller's validID is.
func topLevel(b []byte) (id, channel json.RawMessage) {
	i := skipSpace(b, 0)
	if i == len(b) || b[i] != '{' {
		return nil, nil
	}
	for i++; ; i++ {
		i = skipSpace(b, i)
		if i == len(b) || b[i] != '"' {
			return id, channel
		}
		keyEnd := domain.StringEnd(b, i+1)
		key := b[i:keyEnd]
		i = skipSpace(b, keyEnd)
		if i == len(b) || b[i] != ':' {
			return id, channel
		}
		start := skipSpace(b, i+1)
		end := valueEnd(b, start)
		if end < 0 {
			return id, channel
		}
		switch string(key) {
		case `"id"`:
			id = b[start:end]
		case `"channel"`:
			channel = b[start:end]
		}
		if i = skipSpace(b, end); i == len(b) || b[i] != ',' {
			return id, channel
		}
	}
}

// valueEnd returns where the JSON value that starts at b[i] ends, or -1
// when it does not in b. Nested values are counted by their brackets
// alone; strings are stepped over whole.
func valueEnd(b []byte, i int) int {
	if i == len(b) {
		return -1
	}
	switch b[i] {
	case '"':
		if e := domain.StringEnd(b, i+1); e <= len(b) && b[e-1] == '"' && e > i+1 {
			return e
		}
		return -1
	case '{', '[':
		depth := 0
		for ; i < len(b); i++ {
			switch b[i] {
			case '"':
				i = domain.StringEnd(b, i+1) - 1
			case '{', '[':
				depth++
			case '}', ']':
				if depth--; depth == 0 {
					return i + 1
				}
			}
		}
		return -1
	}
	for j := i; j < len(b); j++ {
		switch b[j] {
		case ',', '}', ']', ' ', '\t', '\n', '\r':
			return j
		}
	}
	return -1
}

func skipSpace(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\n' || b[i] == '\r') {
		i++
	}
	return i
}

// validID reports whether id may be echoed as it came: a JSON number, or a
// JSON string of UTF-8 (encoding/json takes any bytes in a string, and the
// answers are text frames, which a browser fails on bytes that are not
// UTF-8). An id that is not JSON (NaN, 0x1p0, .5, which ParseFloat takes)
// would fail the encoding of the answer that echoes it.
func validID(id json.RawMessage) bool {
	if len(id) == 0 {
		return true
	}
	if id[0] == '"' {
		return utf8.Valid(id) && json.Valid(id)
	}
	_, err := strconv.ParseFloat(string(id), 64)
	return err == nil && json.Valid(id)
}

// decodePlain decodes the frames clients send most without reflection: an
// object whose keys are the request's own, each spelled exactly and given
// once, with strings of printable ASCII and no escapes, whole numbers for
// offsets and ids, and data that is an object, an array or a string. For
// anything else it reports false, leaving req partly set, and
// json.Unmarshal decodes or refuses the frame. What it accepts it decodes
// as Unmarshal would. dataDepth is how deep data nests (0 for a string or
// none; domain.CheckDepth's count).
func decodePlain(b []byte, req *request) (dataDepth int, ok bool) {
	p := plainScanner{b: b}
	if !p.next('{') {
		return 0, false
	}
	if p.next('}') {
		return 0, p.end()
	}
	var seen uint16 // the keys read so far, one bit each
	for {
		key, ok := p.str()
		if !ok || !p.next(':') {
			return 0, false
		}
		p.space()
		var bit uint16
		switch string(key) {
		case "type":
			bit = 1 << 0
			req.Type, ok = p.text()
		case "channel":
			bit = 1 << 1
			req.Channel, ok = p.text()
		case "epoch":
			bit = 1 << 2
			req.Epoch, ok = p.text()
		case "token":
			bit = 1 << 3
			req.Token, ok = p.text()
		case "offset":
			bit = 1 << 4
			req.Offset, ok = p.int()
		case "last":
			bit = 1 << 5
			req.Last, ok = p.int()
		case "since":
			bit = 1 << 6
			req.Since, ok = p.int()
		case "id":
			bit = 1 << 7
			req.ID, ok = p.id()
		case "data":
			bit = 1 << 8
			req.Data, dataDepth, ok = p.data()
		default:
			return 0, false
		}
		// A repeated key is left to Unmarshal (the last one wins there),
		// and to its depth check of the whole frame: a data value that a
		// later one replaces is never checked here.
		if !ok || seen&bit != 0 {
			return 0, false
		}
		seen |= bit
		if p.next('}') {
			return dataDepth, p.end()
		}
		if !p.next(',') {
			return 0, false
		}
	}
}

// plainScanner reads decodePlain's subset of JSON; each method reports
// false where the input leaves that subset.
type plainScanner struct {
	b []byte
	i int
}

func (p *plainScanner) space() {
	for p.i < len(p.b) {
		switch p.b[p.i] {
		case ' ', '\t', '\n', '\r':
			p.i++
		default:
			return
		}
	}
}

// next skips white space and then c, if c is next.
func (p *plainScanner) next(c byte) bool {
	p.space()
	if p.i < len(p.b) && p.b[p.i] == c {
		p.i++
		return true
	}
	return false
}

// end reports whether only white space is left.
func (p *plainScanner) end() bool {
	p.space()
	return p.i == len(p.b)
}

// str reads a string of printable ASCII without escapes, after white
// space, and returns its contents.
func (p *plainScanner) str() ([]byte, bool) {
	if !p.next('"') {
		return nil, false
	}
	for j := p.i; j < len(p.b); j++ {
		switch c := p.b[j]; {
		case c == '"':
			s := p.b[p.i:j]
			p.i = j + 1
			return s, true
		case c < 0x20 || c > 0x7e || c == '\\':
			return nil, false
		}
	}
	return nil, false
}

func (p *plainScanner) text() (string, bool) {
	s, ok := p.str()
	return string(s), ok
}

// number reads the digits of a whole number, at most 18 so that it cannot
// overflow an int64, and returns its text. A fraction or an exponent
// after them is not a value's end, which decodePlain then refuses.
func (p *plainScanner) number() ([]byte, bool) {
	j := p.i
	if j < len(p.b) && p.b[j] == '-' {
		j++
	}
	digits := j
	for j < len(p.b) && p.b[j] >= '0' && p.b[j] <= '9' {
		j++
	}
	n := j - digits
	if n == 0 || n > 18 || (p.b[digits] == '0' && n > 1) {
		return nil, false
	}
	s := p.b[p.i:j]
	p.i = j
	return s, true
}

func (p *plainScanner) int() (*int64, bool) {
	s, ok := p.number()
	if !ok {
		return nil, false
	}
	var v int64
	for _, c := range s {
		if c != '-' {
			v = v*10 + int64(c-'0')
		}
	}
	if s[0] == '-' {
		v = -v
	}
	return &v, true
}

// id reads a plain string or a whole number, and returns a copy of its
// JSON text.
func (p *plainScanner) id() (json.RawMessage, bool) {
	start := p.i
	var ok bool
	if p.i < len(p.b) && p.b[p.i] == '"' {
		_, ok = p.str()
	} else {
		_, ok = p.number()
	}
	if !ok {
		return nil, false
	}
	return append(json.RawMessage(nil), p.b[start:p.i]...), true
}

// data reads an object, an array or a string, checked by json.Valid, and
// returns a copy of its JSON text and how deep it nests.
func (p *plainScanner) data() (_ json.RawMessage, maxDepth int, _ bool) {
	if p.i == len(p.b) {
		return nil, 0, false
	}
	start := p.i
	switch p.b[p.i] {
	case '"':
		p.i = domain.StringEnd(p.b, p.i+1)
		raw, ok := validRaw(p.b[start:p.i])
		return raw, 0, ok
	case '{', '[':
	default:
		return nil, 0, false
	}
	depth := 0
	for ; p.i < len(p.b); p.i++ {
		switch p.b[p.i] {
		case '"':
			p.i = domain.StringEnd(p.b, p.i+1) - 1
		case '{', '[':
			depth++
			maxDepth = max(maxDepth, depth)
		case '}', ']':
			if depth--; depth == 0 {
				p.i++
				raw, ok := validRaw(p.b[start:p.i])
				return raw, maxDepth, ok
			}
		}
	}
	return nil, 0, false
}

func validRaw(b []byte) (json.RawMessage, bool) {
	if !json.Valid(b) {
		return nil, false
	}
	return append(json.RawMessage(nil), b...), true
}

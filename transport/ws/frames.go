package ws

import (
	"encoding/binary"
	"encoding/json"
	"strconv"
	"unicode/utf8"

	"github.com/fazt-realtime/fazt/domain"
	"github.com/fazt-realtime/fazt/projections"
)

// WebSocket opcodes (RFC 6455 section 5.2).
const (
	opText  = 0x1
	opClose = 0x8
	opPing  = 0x9
	opPong  = 0xA
)

// appendFrameHeader appends the header of an unmasked, final server frame.
func appendFrameHeader(b []byte, op byte, n int) []byte {
	b = append(b, 0x80|op)
	switch {
	case n < 126:
		return append(b, byte(n))
	case n <= 0xFFFF:
		b = append(b, 126)
		return binary.BigEndian.AppendUint16(b, uint16(n))
	default:
		b = append(b, 127)
		return binary.BigEndian.AppendUint64(b, uint64(n))
	}
}

// closePayload is the body of a close frame: the code, then the reason,
// cut to fit a control frame on a character boundary (a client must fail
// a connection whose close reason is not valid UTF-8, and would then not
// see the code).
func closePayload(code int, reason string) []byte {
	if len(reason) > 120 {
		n := 120
		for n > 0 && !utf8.RuneStart(reason[n]) {
			n--
		}
		reason = reason[:n]
	}
	b := binary.BigEndian.AppendUint16(nil, uint16(code))
	return append(b, reason...)
}

// appendClose appends a close frame with code and reason to buf.
func appendClose(buf []byte, code int, reason string) []byte {
	body := closePayload(code, reason)
	buf = appendFrameHeader(buf, opClose, len(body))
	return append(buf, body...)
}

// appendDisconnect appends the end of a connection the server closes: a
// {"type":"disconnect"} frame saying why, then the close frame.
func appendDisconnect(buf []byte, code int, reason string) []byte {
	d := mustJSON(struct {
		Type   string `json:"type"`
		Reason string `json:"reason"`
		Code   int    `json:"code"`
	}{"disconnect", reason, code})
	buf = appendFrameHeader(buf, opText, len(d))
	buf = append(buf, d...)
	return appendClose(buf, code, reason)
}

// Encoder builds the frames of the wire protocol. It implements
// projections.Encoder; its output is shared by every receiver of a frame.
type Encoder struct{}

var _ projections.Encoder = Encoder{}

// Message encodes a live message frame.
func (Encoder) Message(ev *domain.MessageBroadcast, ts int64) []byte {
	if ev.Offset != 1 || ev.Epoch == "" {
		return appendMessage(make([]byte, 0, messageSize(ev.Channel, ev.Data)), ev.Channel, ev.Offset, ev.Data, ts, false)
	}
	// A channel's first message names its epoch: a client that joined
	// the channel while it had none (its `subscribed` said "") learns it
	// here, and can resume with it. Epochs are hex: nothing to escape.
	b := appendMessage(make([]byte, 0, messageSize(ev.Channel, ev.Data)+len(ev.Epoch)+11), ev.Channel, ev.Offset, ev.Data, ts, false)
	b = append(b[:len(b)-1], `,"epoch":"`...)
	b = append(b, ev.Epoch...)
	return append(b, `"}`...)
}

// messageSize is the most bytes appendMessage can write for a channel and
// data: its fixed text (with `,"replay":true`) and two 20-digit numbers.
// Sizing a frame's buffer with it saves the copy of a regrowth.
func messageSize(channel string, data []byte) int {
	return len(`{"type":"message","channel":"","offset":,"data":,"timestamp":,"replay":true}`) + 2*20 + len(channel) + len(data)
}

// appendMessage appends a message frame's JSON. Channel names never need
// escaping (their alphabet has no quote, backslash or control character),
// and data was validated as JSON when it was published.
func appendMessage(b []byte, channel string, offset uint64, data []byte, ts int64, replay bool) []byte {
	b = append(b, `{"type":"message","channel":"`...)
	b = append(b, channel...)
	b = append(b, `","offset":`...)
	b = strconv.AppendUint(b, offset, 10)
	b = append(b, `,"data":`...)
	b = append(b, data...)
	b = append(b, `,"timestamp":`...)
	b = strconv.AppendInt(b, ts, 10)
	if replay {
		b = append(b, `,"replay":true`...)
	}
	return append(b, '}')
}

// appendSubscribed appends a `subscribed` reply's JSON, as json.Marshal
// would write it but for its escapes of <, >, & and U+2028/U+2029, which a
// string id keeps as the client sent it (the same JSON). id is a JSON
// string or number (checked when the request was decoded); channel names
// never need escaping, and epochs are hex.
func appendSubscribed(b []byte, id json.RawMessage, channel string, head uint64, epoch string, replay int, truncated bool, first uint64, epochChanged bool) []byte {
	b = append(b, `{"type":"subscribed"`...)
	if len(id) > 0 {
		b = append(b, `,"id":`...)
		b = append(b, id...)
	}
	b = append(b, `,"channel":"`...)
	b = append(b, channel...)
	b = append(b, `","offset":`...)
	b = strconv.AppendUint(b, head, 10)
	b = append(b, `,"epoch":"`...)
	b = append(b, epoch...)
	b = append(b, `","replay":`...)
	b = strconv.AppendInt(b, int64(replay), 10)
	b = append(b, `,"truncated":`...)
	b = strconv.AppendBool(b, truncated)
	b = append(b, `,"first_offset":`...)
	b = strconv.AppendUint(b, first, 10)
	if epochChanged {
		b = append(b, `,"epoch_changed":true`...)
	}
	return append(b, '}')
}

// BroadcastAll encodes a message to every connection: no channel, no offset.
func (Encoder) BroadcastAll(ev *domain.BroadcastAll, ts int64) []byte {
	b := make([]byte, 0, 48+len(ev.Data))
	b = append(b, `{"type":"message","data":`...)
	b = append(b, ev.Data...)
	b = append(b, `,"timestamp":`...)
	b = strconv.AppendInt(b, ts, 10)
	return append(b, '}')
}

// Presence encodes a presence join or leave.
func (Encoder) Presence(channel, event, client string) []byte {
	return mustJSON(struct {
		Type    string `json:"type"`
		Channel string `json:"channel"`
		Event   string `json:"event"`
		Client  string `json:"client"`
	}{"presence", channel, event, client})
}

func mustJSON(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err) // only ever called with values that marshal
	}
	return b
}

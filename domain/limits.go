package domain

import (
	"bytes"
	"context"
	"fmt"
	"math"
	"strconv"
)

// Limits bound what one app's clients may do. Zero fields take the defaults,
// which are meant never to get in the way of real use: tens of thousands of
// connections per app, 128 channels per connection, and an unthrottled
// server API.
type Limits struct {
	// MaxMessageBytes caps an inbound WebSocket frame and a message's data.
	MaxMessageBytes int `json:"max_message_bytes,omitempty"`
	// MaxSubscriptions caps the channels one connection may join.
	MaxSubscriptions int `json:"max_subscriptions,omitempty"`
	// MaxConnections caps the app's open connections.
	MaxConnections int `json:"max_connections,omitempty"`
	// InboundRate caps the frames per second one connection may send,
	// with bursts of up to InboundBurst frames.
	InboundRate  float64 `json:"inbound_rate,omitempty"`
	InboundBurst int     `json:"inbound_burst,omitempty"`
	// MaxJSONDepth caps how deeply frames and message data may nest.
	MaxJSONDepth int `json:"max_json_depth,omitempty"`
}

// MaxMessageBytesLimit is the largest max_message_bytes an app may set:
// a connection reads frames up to four times it.
const MaxMessageBytesLimit = 16 << 20

// Default limits.
const (
	DefaultMaxMessageBytes  = 64 << 10
	DefaultMaxSubscriptions = 128
	DefaultMaxConnections   = 50000
	DefaultInboundRate      = 100
	DefaultInboundBurst     = 200
	DefaultMaxJSONDepth     = 32
)

// MaxKickReason caps the reason of a kick, in bytes, from the server API
// and from JS alike: the reason travels in the client's disconnect frame
// and is kept in the log.
const MaxKickReason = 1024

// CheckKickReason checks a kick's reason against MaxKickReason.
func CheckKickReason(reason string) error {
	if len(reason) > MaxKickReason {
		return Errorf(CodeTooLarge, "kick reason is %d bytes; the limit is %d", len(reason), MaxKickReason)
	}
	return nil
}

// Batch bounds, for POST /_api/publish-batch and fazt.realtime.broadcastBatch:
// a batch is one transaction, so the log's writer holds every other
// appender back while it commits. A thousand messages of the default 64
// KiB limit would be 64 MiB; MaxBatchBytes keeps one batch to a few
// milliseconds of the writer.
const (
	MaxBatchMessages = 1000
	MaxBatchBytes    = 4 << 20
)

// CheckBatchSize refuses a batch of n messages that is empty (bad_request)
// or over MaxBatchMessages (too_large); what names the call.
func CheckBatchSize(what string, n int) error {
	switch {
	case n == 0:
		return Errorf(CodeBadRequest, "%s needs messages", what)
	case n > MaxBatchMessages:
		return Errorf(CodeTooLarge, "%d messages; a batch holds at most %d", n, MaxBatchMessages)
	}
	return nil
}

// WithDefaults returns l with zero fields set to the defaults.
func (l Limits) WithDefaults() Limits {
	if l.MaxMessageBytes <= 0 {
		l.MaxMessageBytes = DefaultMaxMessageBytes
	}
	if l.MaxSubscriptions <= 0 {
		l.MaxSubscriptions = DefaultMaxSubscriptions
	}
	if l.MaxConnections <= 0 {
		l.MaxConnections = DefaultMaxConnections
	}
	if l.InboundRate <= 0 {
		l.InboundRate = DefaultInboundRate
	}
	if l.InboundBurst <= 0 {
		l.InboundBurst = max(DefaultInboundBurst, int(l.InboundRate))
	}
	if l.MaxJSONDepth <= 0 {
		l.MaxJSONDepth = DefaultMaxJSONDepth
	}
	return l
}

// DepthError is CheckDepth's error; its code is bad_request.
type DepthError struct{ Max int }

func (e *DepthError) Error() string { return fmt.Sprintf("JSON nests deeper than %d levels", e.Max) }

// Unwrap gives the error its protocol code.
func (e *DepthError) Unwrap() error { return &Error{Code: CodeBadRequest, Msg: e.Error()} }

// CheckDepth reports a *DepthError, with code bad_request, when the JSON text b
// nests objects and arrays deeper than max. It does not validate b
// otherwise; it only counts brackets outside strings, so it is cheap enough
// to run before decoding.
func CheckDepth(b []byte, max int) error {
	depth := 0
	for i := 0; i < len(b); i++ {
		switch b[i] {
		case '"':
			i = StringEnd(b, i+1) - 1
		case '{', '[':
			depth++
			if depth > max {
				return &DepthError{Max: max}
			}
		case '}', ']':
			depth--
		}
	}
	return nil
}

// CheckNumbers reports an error, with code bad_request, when the JSON text
// b holds a number beyond the range of a double (1e400): JavaScript reads
// it as Infinity, which has no JSON form, and goja's JSON.parse refuses it.
// Like CheckDepth it does not validate b otherwise; only numbers with an
// exponent, or of more than 300 characters, are parsed.
func CheckNumbers(b []byte) error {
	for i := 0; i < len(b); i++ {
		c := b[i]
		switch {
		case c == '"':
			i = StringEnd(b, i+1) - 1
		case c == '-' || c >= '0' && c <= '9':
			j, exp := i+1, false
			for ; j < len(b); j++ {
				c := b[j]
				if c == 'e' || c == 'E' {
					exp = true
				} else if !(c >= '0' && c <= '9' || c == '.' || c == '+' || c == '-') {
					break
				}
			}
			if exp || j-i > 300 {
				if f, err := strconv.ParseFloat(string(b[i:j]), 64); err != nil && math.IsInf(f, 0) {
					return Errorf(CodeBadRequest, "the number %.40s is beyond the range of a double", b[i:j])
				}
			}
			i = j - 1
		}
	}
	return nil
}

// CheckUnixMillis refuses, with code bad_request, a time in unix
// milliseconds that is negative, or that looks like unix seconds: 10 or 11
// digits (2001 to 5138 in seconds) read as milliseconds would be a time
// in 1970 to 1973, and bound a query there in silence.
func CheckUnixMillis(name string, ms int64) error {
	switch {
	case ms < 0:
		return Errorf(CodeBadRequest, "%s %d: a time must not be negative", name, ms)
	case ms >= 1e9 && ms < 1e11:
		return Errorf(CodeBadRequest, "%s %d: looks like unix seconds; give unix milliseconds (%d000)", name, ms, ms)
	}
	return nil
}

// StringEnd returns the index just past the end of the JSON string whose
// contents start at b[i] (the byte after its opening quote): past the
// first quote that no backslash escapes, or len(b) if there is none.
//
// It jumps from quote to quote (bytes.IndexByte): a quote ends the string
// unless an odd run of backslashes stands before it.
func StringEnd(b []byte, i int) int {
	for i < len(b) {
		q := bytes.IndexByte(b[i:], '"')
		if q < 0 {
			return len(b)
		}
		j := i + q
		k := j
		for k > i && b[k-1] == '\\' {
			k--
		}
		if (j-k)%2 == 0 {
			return j + 1
		}
		i = j + 1
	}
	return len(b)
}

// Page sizes of the listings that page (history, audit, channels), in the
// server API and in JS alike.
const (
	DefaultPageSize = 100
	MaxPageSize     = 1000
)

// PageSize is the size of a page asked for as n: DefaultPageSize when n is
// 0, at most MaxPageSize.
func PageSize(n uint64) int {
	if n == 0 {
		return DefaultPageSize
	}
	return int(min(n, MaxPageSize))
}

// MaxPageBytes bounds the data of a page of history: a read stops at the
// message whose data takes the page's to this many bytes or more, and so
// holds at least one message whatever its size. Without it a page of 1000
// messages of 16 MiB (an app's largest max_message_bytes) would be read
// into memory whole: 16 GiB, for one replay or one request.
const MaxPageBytes = 8 << 20

// HistoryPageFull reports whether msgs, a page of history read with
// HistoryQuery.MaxBytes 0 and Limit limit, may have more after it: it
// has limit messages, or its read stopped at MaxPageBytes.
func HistoryPageFull(msgs []Message, limit int) bool {
	if len(msgs) >= limit {
		return true
	}
	n := 0
	for _, m := range msgs {
		n += len(m.Data)
	}
	return n >= MaxPageBytes
}

// HistoryPageSize is the page size of a history read asked for limit
// messages (PageSize's rule): a read of the newest last messages asks for
// all of them, up to MaxPageSize, unless limit says fewer.
func HistoryPageSize(limit uint64, last int) int {
	if limit == 0 && last > 0 {
		limit = uint64(last)
	}
	return PageSize(limit)
}

// Kick kicks client from app on behalf of by, as the server API and an
// app's JS both do: the reason checked, the client connected, its
// connection fenced (members.Fence: what it is recording now comes
// before the kick in the log, and nothing of it after), its
// client.kicked.v1 committed, and then applied (members.KickTook), so
// that its connection is closing when Kick returns. It returns the
// kick's sequence number.
func Kick(ctx context.Context, log Log, members Members, app, client, reason string, by Actor) (uint64, error) {
	if err := CheckKickReason(reason); err != nil {
		return 0, err
	}
	// Connected first: its session's start is applied, and so committed,
	// and the kick cannot precede it in the log.
	if !members.Connected(app, client) {
		return 0, Errorf(CodeNotFound, "no client %s connected to app %s", client, app)
	}
	done, pending, ok := members.Fence(app, client)
	if !ok {
		if pending != 0 {
			// Being kicked already (a retry of a kick that was not
			// applied in time, say): this kick is that one.
			return pending, members.KickTook(ctx, app, client, pending)
		}
		return 0, Errorf(CodeNotFound, "no client %s connected to app %s (it is leaving)", client, app)
	}
	seq, err := appendFenced(ctx, log, done, &ClientKicked{App: app, Client: client, Reason: reason, By: by})
	if err != nil {
		return 0, err
	}
	return seq, members.KickTook(ctx, app, client, seq)
}

// appendFenced appends f and then ends the fence done holds, whatever
// happens, with f's sequence number, or 0 when f was not appended.
func appendFenced(ctx context.Context, log Log, done func(seq uint64), f Fact) (seq uint64, err error) {
	defer func() { done(seq) }()
	evs, err := log.Append(ctx, f)
	if err != nil {
		return 0, err
	}
	return evs[0].Seq, nil
}

package main

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/gorilla/websocket"
	"github.com/spf13/cobra"

	"github.com/fazt-realtime/fazt/domain"
)

func tailCmd() *cobra.Command {
	var (
		server, app, channel string
		secret               string
		offset, count        int64
		retries              int
		asJSON               bool
	)
	cmd := &cobra.Command{
		Use:   "tail --app A --channel C [--offset N]",
		Short: "Follow a channel live through a running server",
		Long: `Follow a channel over WebSocket and print each message as it arrives.
With --offset N, the retained messages after offset N are printed first.
When the connection drops (the server restarts, say), tail reconnects and
resumes after the last offset it printed, so nothing is missed or repeated;
if retention dropped messages meanwhile, it says so on stderr.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := domain.ValidateChannel(channel); err != nil {
				return fmt.Errorf("--channel: %w", err)
			}
			if count < 0 || retries < 0 {
				return errors.New("--count and --retries must be 0 or more")
			}
			if domain.IsPrivate(channel) && secret == "" {
				return fmt.Errorf("--channel %s is private: give --secret (FAZT_APP_SECRET), the app's secret in its app.json, to sign the token", channel)
			}
			t := &tailer{server: server, app: app, channel: channel, secret: secret, asJSON: asJSON, count: count,
				out: cmd.OutOrStdout(), errw: cmd.ErrOrStderr(), last: -1}
			if cmd.Flags().Changed("offset") {
				if offset < 0 {
					return errors.New("--offset must be 0 or more")
				}
				t.last = offset
			}
			return t.run(cmd.Context(), retries)
		},
	}
	serverFlags(cmd, &server)
	f := cmd.Flags()
	f.StringVar(&app, "app", domain.DefaultApp, "app")
	f.StringVar(&channel, "channel", "", "channel (required)")
	f.Int64Var(&offset, "offset", 0, "first print the retained messages after this offset (default: live only)")
	f.Int64Var(&count, "count", 0, "exit after this many messages (0: follow until interrupted)")
	f.IntVar(&retries, "retries", 30, "give up after this many reconnects in a row that fail")
	f.BoolVar(&asJSON, "json", false, "print JSON lines: channel, offset, timestamp, data, replay")
	secretFlag(f, &secret, "secret", "FAZT_APP_SECRET", "for a private-* channel: the app's secret (app.json), to sign the token tail subscribes with (FAZT_APP_SECRET; the variable keeps it out of the process list)")
	cmd.MarkFlagRequired("channel")
	return cmd
}

// tailer follows one channel, remembering the last offset printed so that
// a new connection resumes right after it.
type tailer struct {
	server, app, channel string
	secret               string // signs the token of a private channel
	// host is the Host the server takes the app from, and clientID the
	// connection's id: the token names both (the app as connected names
	// it, signApp, when it has).
	host, clientID, signApp string
	asJSON                  bool
	count                   int64
	out, errw               io.Writer

	last    int64 // last offset printed; -1 before the first (live only)
	epoch   string
	printed int64
}

// errDone ends the tail normally (--count reached).
var errDone = errors.New("done")

// permanentError is a refusal that reconnecting would only repeat.
type permanentError struct{ err error }

func (e permanentError) Error() string { return e.err.Error() }

func (t *tailer) run(ctx context.Context, retries int) error {
	failures := 0
	for {
		connected, err := t.once(ctx)
		switch {
		case errors.Is(err, errDone):
			return nil
		case ctx.Err() != nil:
			return nil
		case errors.As(err, new(permanentError)):
			return err
		}
		if connected {
			failures = 0
		}
		failures++
		if failures > retries {
			if retries == 0 {
				return fmt.Errorf("%v (--retries 0: no reconnect)", err)
			}
			return fmt.Errorf("gave up after %d failed reconnects: %v", retries, err)
		}
		wait := min(100*time.Millisecond<<min(failures-1, 6), 5*time.Second)
		from := "live"
		if t.last >= 0 {
			from = fmt.Sprintf("after offset %d", t.last)
		}
		fmt.Fprintf(t.errw, "tail: %v; reconnecting in %s, resuming %s\n", err, wait, from)
		select {
		case <-time.After(wait):
		case <-ctx.Done():
			return nil
		}
	}
}

// tailPing is how often a tail pings the server, and tailSilence how long
// it waits for any frame before it takes the connection for lost.
var tailPing, tailSilence = 20 * time.Second, 60 * time.Second

// once connects, subscribes and prints until the connection ends. connected
// reports whether the subscription got as far as `subscribed`.
func (t *tailer) once(ctx context.Context) (connected bool, err error) {
	base, host, err := serverURL(t.server, t.app)
	if err != nil {
		return false, permanentError{err}
	}
	t.host = host
	u := *base
	u.Scheme = strings.Replace(u.Scheme, "http", "ws", 1)
	u.Path += "/_ws"
	dctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	conn, resp, err := websocket.DefaultDialer.DialContext(dctx, u.String(), http.Header{"Host": {host}})
	if err != nil {
		if resp != nil && resp.StatusCode/100 == 4 {
			var e struct{ Error string }
			json.NewDecoder(io.LimitReader(resp.Body, 4096)).Decode(&e)
			return false, permanentError{fmt.Errorf("server refused the connection (%s): %s", resp.Status, e.Error)}
		}
		return false, fmt.Errorf("connect to %s: %v", base.Host, err)
	}
	defer conn.Close()
	// Closing the socket is how a cancelled tail stops a blocked read.
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	defer stop()

	if domain.IsPrivate(t.channel) {
		// The token is bound to this connection's client id, which
		// `connected` says.
		conn.SetReadDeadline(time.Now().Add(tailSilence))
		var hello struct {
			Type     string `json:"type"`
			ClientID string `json:"client_id"`
			App      string `json:"app"`
			Reason   string `json:"reason"`
		}
		switch err := conn.ReadJSON(&hello); {
		case err != nil:
			return false, fmt.Errorf("connect: %v", err)
		case hello.Type == "disconnect": // at the app's or the server's most connections, say
			return false, fmt.Errorf("server refused the connection: %s", hello.Reason)
		case hello.Type != "connected":
			return false, fmt.Errorf("connect: the server sent %q before connected", hello.Type)
		}
		t.clientID, t.signApp = hello.ClientID, hello.App
	}
	sub, err := t.subscribeFrame()
	if err != nil {
		return false, permanentError{err}
	}
	if err := conn.WriteJSON(sub); err != nil {
		return false, fmt.Errorf("subscribe: %v", err)
	}
	// A server that stopped answering (stopped, wedged, its network gone
	// without a reset) would hold the read forever: the tail pings it now
	// and then, which any live server answers, and takes silence past
	// tailSilence for a lost connection, which it reconnects.
	ping, silence := tailPing, tailSilence
	var wmu sync.Mutex
	write := func(v any) error {
		wmu.Lock()
		defer wmu.Unlock()
		conn.SetWriteDeadline(time.Now().Add(silence))
		return conn.WriteJSON(v)
	}
	pinging := make(chan struct{})
	defer close(pinging)
	go func() {
		tick := time.NewTicker(ping)
		defer tick.Stop()
		for {
			select {
			case <-tick.C:
				if write(map[string]string{"type": "ping"}) != nil {
					return // the read fails too, and says why
				}
			case <-pinging:
				return
			}
		}
	}()
	for {
		conn.SetReadDeadline(time.Now().Add(silence))
		var f struct {
			Type         string          `json:"type"`
			Channel      string          `json:"channel"`
			Offset       uint64          `json:"offset"`
			Epoch        string          `json:"epoch"`
			Data         json.RawMessage `json:"data"`
			Timestamp    int64           `json:"timestamp"`
			Replay       json.RawMessage `json:"replay"` // a count in subscribed, a bool in message
			Truncated    bool            `json:"truncated"`
			FirstOffset  uint64          `json:"first_offset"`
			EpochChanged bool            `json:"epoch_changed"`
			Error        string          `json:"error"`
			Code         string          `json:"code"`
			Reason       string          `json:"reason"`
		}
		_, raw, err := conn.ReadMessage()
		if err != nil {
			var ce *websocket.CloseError
			if errors.As(err, &ce) && ce.Code == 4000 {
				return connected, permanentError{fmt.Errorf("kicked by the server: %s", ce.Text)}
			}
			return connected, fmt.Errorf("connection lost: %v", err)
		}
		if err := json.Unmarshal(raw, &f); err != nil {
			fmt.Fprintf(t.errw, "tail: skipping a frame that is not understood: %v\n", err)
			continue
		}
		switch f.Type {
		case "ping":
			write(map[string]string{"type": "pong"})
		case "error":
			err := fmt.Errorf("server refused the subscription (%s): %s", f.Code, f.Error)
			switch f.Code {
			case "unavailable", "internal", "rate_limited": // may pass: reconnect and try again
				return connected, err
			}
			return connected, permanentError{err}
		case "subscribed":
			connected = true
			if f.EpochChanged {
				fmt.Fprintf(t.errw, "tail: the channel's history was reset (new epoch %s); starting over from its oldest message\n", f.Epoch)
				t.last = 0
			}
			if f.Truncated {
				fmt.Fprintf(t.errw, "tail: messages before offset %d are no longer retained; resuming there\n", f.FirstOffset)
			}
			t.epoch = f.Epoch
			if t.last < 0 {
				t.last = int64(f.Offset) // live: everything after the head
			}
		case "message":
			if f.Channel != t.channel || int64(f.Offset) <= t.last {
				continue
			}
			if t.asJSON {
				b, _ := json.Marshal(struct {
					Channel   string          `json:"channel"`
					Offset    uint64          `json:"offset"`
					Timestamp int64           `json:"timestamp"`
					Data      json.RawMessage `json:"data"`
					Replay    bool            `json:"replay"`
				}{f.Channel, f.Offset, f.Timestamp, f.Data, string(f.Replay) == "true"})
				_, err = fmt.Fprintf(t.out, "%s\n", b)
			} else {
				_, err = fmt.Fprintf(t.out, "%d\t%s\t%s\n", f.Offset, formatTime(f.Timestamp), oneLine(string(f.Data), 1<<16))
			}
			if err != nil {
				// A message not written (a full disk under an archive)
				// is not passed over: the tail ends before it, and
				// --offset resumes there.
				return connected, permanentError{fmt.Errorf("write offset %d: %w (resume with --offset %d, in epoch %s)", f.Offset, err, max(t.last, 0), cmp.Or(f.Epoch, t.epoch))}
			}
			t.last = int64(f.Offset)
			if f.Epoch != "" { // a history's first message names its epoch
				t.epoch = f.Epoch
			}
			if t.printed++; t.count > 0 && t.printed >= t.count {
				return connected, errDone
			}
		case "unsubscribed":
			// A private channel's token expired: subscribe again with a
			// fresh one, from the last offset printed.
			if f.Channel == t.channel && f.Reason == domain.ReasonTokenExpired {
				sub, err := t.subscribeFrame()
				if err == nil {
					err = write(sub)
				}
				if err != nil {
					return connected, fmt.Errorf("subscribe again after the token expired: %v", err)
				}
			}
		case "disconnect":
			if strings.HasPrefix(f.Reason, "kicked") {
				return connected, permanentError{fmt.Errorf("disconnected by the server: %s", f.Reason)}
			}
		}
	}
}

// tailTokenLife is how long the token tail signs for a private channel
// admits it: the server ends the subscription then, and tail subscribes
// again with a fresh token.
var tailTokenLife = time.Hour

// subscribeFrame is the subscribe for the channel, from the last offset
// printed, with a token signed with the app's secret for a private
// channel: bound to the channel, the app as connected named it (else as
// the server takes it from the Host: --app, or the server address's own
// first label) and the connection's client id, for tailTokenLife.
func (t *tailer) subscribeFrame() (map[string]any, error) {
	sub := map[string]any{"type": "subscribe", "channel": t.channel}
	if t.last >= 0 {
		sub["offset"] = t.last
		if t.epoch != "" {
			sub["epoch"] = t.epoch
		}
	}
	if domain.IsPrivate(t.channel) {
		app, _ := appOfHost(t.host) // serverURL, which made t.host, read FAZT_DOMAIN well
		token, err := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{
			"channel": t.channel, "app": cmp.Or(t.signApp, app), "client": t.clientID, "exp": time.Now().Add(tailTokenLife).Unix(),
		}).SignedString([]byte(t.secret))
		if err != nil {
			return nil, fmt.Errorf("sign the token: %v", err)
		}
		sub["token"] = token
	}
	return sub, nil
}

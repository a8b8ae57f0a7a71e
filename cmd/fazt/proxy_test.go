package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"

	"github.com/gorilla/websocket"

	"github.com/fazt-realtime/fazt/internal/realip"
)

// TestTrustedProxiesNameTheClient: behind a reverse proxy every
// connection came from the proxy's address, and the log's record of each
// (and JS's req.remote) said so. With the proxy trusted
// (--trusted-proxies), the client's address is taken from the
// X-Forwarded-For the proxy wrote; without, the header any client can
// send is ignored.
func TestTrustedProxiesNameTheClient(t *testing.T) {
	for _, trusted := range []bool{true, false} {
		var opts []nodeOption
		want, wantJS := "198.51.100.9", "198.51.100.9"
		if trusted {
			proxies, err := realip.Parse("127.0.0.1,::1")
			if err != nil {
				t.Fatal(err)
			}
			opts = append(opts, func(c *nodeConfig) { c.Proxies = proxies })
		} else {
			want, wantJS = "127.0.0.1:", "127.0.0.1:"
		}
		tn := startTestNode(t, map[string]string{"px": ""}, opts...)
		tn.writeFiles(map[string]string{"px/api/main.js": `module.exports = (req) => ({ remote: req.remote });`})

		h := http.Header{"Host": {"px.localhost"}, "X-Forwarded-For": {"203.0.113.1, " + want}}
		if !trusted {
			h.Set("X-Forwarded-For", "198.51.100.9")
		}
		conn, _, err := websocket.DefaultDialer.Dial(tn.wsURL(), h)
		if err != nil {
			t.Fatal(err)
		}
		conn.Close()
		waitFor(t, func() bool { return len(tn.audit("px", "type=connected").Events) == 1 })
		ev := tn.audit("px", "type=connected").Events[0].Event
		if remote, _ := ev["remote"].(string); !strings.HasPrefix(remote, want) || (trusted && remote != want) {
			t.Fatalf("trusted %v: connected with remote %q, want %q", trusted, remote, want)
		}

		if trusted {
			// An upgrade on a kept-alive connection (a proxy's pool) is
			// net/http's, not the listener's: the same address.
			nc, err := net.Dial("tcp", strings.TrimPrefix(tn.srv.URL, "http://"))
			if err != nil {
				t.Fatal(err)
			}
			br := bufio.NewReader(nc)
			fmt.Fprintf(nc, "GET /healthz HTTP/1.1\r\nHost: px.localhost\r\n\r\n")
			if resp, err := http.ReadResponse(br, nil); err != nil || resp.StatusCode != 200 {
				t.Fatalf("healthz on the kept-alive connection: %v %v", resp, err)
			} else {
				io.Copy(io.Discard, resp.Body)
			}
			fmt.Fprintf(nc, "GET /_ws HTTP/1.1\r\nHost: px.localhost\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"+
				"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nX-Forwarded-For: 192.0.2.44\r\n\r\n")
			if resp, err := http.ReadResponse(br, nil); err != nil || resp.StatusCode != http.StatusSwitchingProtocols {
				t.Fatalf("upgrade on the kept-alive connection: %v %v", resp, err)
			}
			nc.Close()
			waitFor(t, func() bool { return len(tn.audit("px", "type=connected").Events) == 2 })
			if remote := tn.audit("px", "type=connected").Events[1].Event["remote"]; remote != "192.0.2.44" {
				t.Fatalf("upgrade through net/http: remote %v", remote)
			}
		}

		var out struct{ Remote string }
		waitFor(t, func() bool {
			req, _ := http.NewRequest("GET", tn.srv.URL+"/api/remote", nil)
			req.Host = "px.localhost"
			req.Header.Set("X-Forwarded-For", h.Get("X-Forwarded-For"))
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			return resp.StatusCode == 200 && json.NewDecoder(resp.Body).Decode(&out) == nil
		})
		if !strings.HasPrefix(out.Remote, wantJS) || (trusted && out.Remote != wantJS) {
			t.Fatalf("trusted %v: req.remote %q, want %q", trusted, out.Remote, wantJS)
		}
		tn.stop()
	}
}

// TestServeRefusesABadTrustedProxy: a proxy serve cannot read is an error
// at start, from the flag or from FAZT_TRUSTED_PROXIES.
func TestServeRefusesABadTrustedProxy(t *testing.T) {
	serveRefuses(t, "--trusted-proxies", "FAZT_TRUSTED_PROXIES", "10.0.0.0/33", "127.0.0.1, proxy.local")
}

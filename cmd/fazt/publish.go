package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/fazt-realtime/fazt/domain"
)

func publishCmd() *cobra.Command {
	var (
		server, app, channel, data, key string
		asJSON                          bool
	)
	cmd := &cobra.Command{
		Use:   "publish --app A --channel C --data '{...}'",
		Short: "Broadcast a message through a running server",
		Long: `Broadcast a message to a channel through a running server's API
(POST /_api/publish) and print the offset it was given once it is committed.
--data is any JSON value; "-" reads it from stdin. The key is the admin key
or one of the app's own api_keys.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := domain.ValidateChannel(channel); err != nil {
				return fmt.Errorf("--channel: %w", err)
			}
			body := []byte(data)
			if data == "-" {
				var err error
				if body, err = io.ReadAll(io.LimitReader(cmd.InOrStdin(), maxStdinData+1)); err != nil {
					return fmt.Errorf("read data from stdin: %w", err)
				}
				if len(body) > maxStdinData {
					return fmt.Errorf("data from stdin is over %d bytes, more than any server takes in a message", maxStdinData)
				}
			}
			body = bytes.TrimSpace(body)
			if !json.Valid(body) {
				return errors.New("--data is not valid JSON (quote strings: --data '\"hello\"')")
			}
			if key == "" {
				return errors.New("no key: set --admin-key or FAZT_ADMIN_KEY (an app key works too)")
			}
			req, _ := json.Marshal(map[string]any{"channel": channel, "data": json.RawMessage(body)})
			var resp struct {
				Channel string `json:"channel"`
				Offset  uint64 `json:"offset"`
				Epoch   string `json:"epoch"`
				Seq     uint64 `json:"seq"`
			}
			raw, err := callAPI(cmd.Context(), server, app, key, "POST", "/_api/publish", req, &resp)
			if err != nil {
				return err
			}
			if asJSON {
				_, err := fmt.Fprintf(cmd.OutOrStdout(), "%s\n", bytes.TrimSpace(raw))
				return err
			}
			_, host, _ := serverURL(server, app) // callAPI has taken it
			to, _ := appOfHost(host)             // and FAZT_DOMAIN with it
			_, err = fmt.Fprintf(cmd.OutOrStdout(), "published to %s/%s: offset %d (epoch %s, seq %d)\n",
				to, resp.Channel, resp.Offset, resp.Epoch, resp.Seq)
			return err
		},
	}
	serverFlags(cmd, &server)
	f := cmd.Flags()
	keyFlag(f, &key, "admin-key", "API key: the admin key or an app key (FAZT_ADMIN_KEY)")
	f.StringVar(&app, "app", domain.DefaultApp, "app")
	f.StringVar(&channel, "channel", "", "channel (required)")
	f.StringVar(&data, "data", "", "the message: any JSON value, or - for stdin (required)")
	f.BoolVar(&asJSON, "json", false, "print the server's JSON answer")
	cmd.MarkFlagRequired("channel")
	cmd.MarkFlagRequired("data")
	return cmd
}

// serverFlags adds --server and its synonym --addr, the address of a
// running server, to cmd; giving both is an error (the last would win in
// silence).
func serverFlags(cmd *cobra.Command, p *string) {
	def := envOr("FAZT_ADDR", "127.0.0.1:8080")
	cmd.Flags().StringVar(p, "server", def, "address or URL of the running server (FAZT_ADDR)")
	cmd.Flags().StringVar(p, "addr", def, "same as --server")
	cmd.MarkFlagsMutuallyExclusive("server", "addr")
}

// maxStdinData bounds what --data - reads: a message's data is at most 16
// MiB on any server (max_message_bytes), and its JSON text little more.
const maxStdinData = domain.MaxMessageBytesLimit + 1<<10

// serverURL turns an address ("127.0.0.1:8080") or a URL into the base URL
// of the server, and returns the Host header that selects app on it: the
// app's name as the first label of the server's host.
func serverURL(server, app string) (base *url.URL, host string, err error) {
	if !strings.Contains(server, "://") {
		server = "http://" + server
	}
	u, err := url.Parse(server)
	if err != nil || u.Host == "" || (u.Scheme != "http" && u.Scheme != "https") {
		return nil, "", fmt.Errorf("server %q: want host:port or an http(s) URL", server)
	}
	u.Path = strings.TrimSuffix(u.Path, "/")
	if u.Hostname() == "" { // ":8080", as FAZT_ADDR often is for serve
		u.Host = "localhost" + u.Host
	}
	host = u.Host
	own, err := appOfHost(host)
	if err != nil {
		return nil, "", err
	}
	switch {
	case app == "" || own == app:
		// "": a call that names no app by its Host (purge).
		return u, host, nil
	case app == domain.DefaultApp && own != "":
		// --app left at its default: the app the server's address names
		// (chat.example.com), or default.
		return u, host, nil
	case app != domain.DefaultApp:
		if err := checkApp(app); err != nil {
			return nil, "", err
		}
		host = app + "." + host
		own, _ = appOfHost(host) // FAZT_DOMAIN was read well above
	}
	// The server reads the app off the Host header as it reads any: an
	// IPv6 address, or a host name of one label, cannot carry it, and
	// under FAZT_DOMAIN a host under none of its domains names no app.
	if own == app {
		return u, host, nil
	}
	domains, _ := parseDomains(os.Getenv("FAZT_DOMAIN"))
	if own == "" {
		return nil, "", fmt.Errorf("server %q cannot be asked for app %s by its Host header: %s is under none of FAZT_DOMAIN's domains (%s); give the server by one of them, or as localhost:PORT", server, app, host, strings.Join(domains, ", "))
	}
	return nil, "", fmt.Errorf("server %q cannot be asked for app %s by its Host header (%s would reach app %s): give the server by a name it has, such as localhost:8080 or 127.0.0.1:8080", server, app, host, own)
}

// appOfHost is the app a server reads off host: as fazt serve --domain
// has it when FAZT_DOMAIN is set (a server's domains, given to the CLI
// the same way), otherwise domain.AppFromHost. A host under none of the
// domains is "" (it reaches no app). A FAZT_DOMAIN fazt serve would
// refuse is an error: read the old way, it would name another app.
func appOfHost(host string) (string, error) {
	domains, err := parseDomains(os.Getenv("FAZT_DOMAIN"))
	if err != nil {
		return "", fmt.Errorf("FAZT_DOMAIN: %w", err)
	}
	app, _ := domain.AppFromHostIn(host, domains)
	return app, nil
}

// apiTimeout bounds a CLI command's call to the server API.
var apiTimeout = 30 * time.Second

// callAPI calls the server API as app and decodes a 2xx answer into out. A
// failure is one line: the server's error and code, or why it was not
// reached.
func callAPI(ctx context.Context, server, app, key, method, path string, body []byte, out any) ([]byte, error) {
	return callAPIWithin(ctx, apiTimeout, server, app, key, method, path, body, out)
}

// noAnswer is callAPIWithin's error for a call the server did not
// answer in time: it may have been carried out.
type noAnswer struct {
	host   string
	within time.Duration
}

func (e *noAnswer) Error() string {
	// The request may have reached the server, and a publish may have
	// been committed: a retry could send it twice.
	return fmt.Sprintf("no answer from %s within %s; the request may still have been carried out (check the history or the audit before trying again)", e.host, e.within)
}

// callAPIWithin is callAPI with its own bound on the call.
func callAPIWithin(ctx context.Context, within time.Duration, server, app, key, method, path string, body []byte, out any) ([]byte, error) {
	base, host, err := serverURL(server, app)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, within)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, base.String()+path, bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	req.Host = host
	req.Header.Set("Authorization", "Bearer "+key)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		if errors.Is(err, context.DeadlineExceeded) {
			return nil, &noAnswer{base.Host, within}
		}
		return nil, fmt.Errorf("server %s is not reachable: %v", base.Host, errors.Unwrap(err))
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return nil, fmt.Errorf("read answer from %s: %w", base.Host, err)
	}
	if resp.StatusCode/100 != 2 {
		var e struct{ Error, Code string }
		if json.Unmarshal(raw, &e) == nil && e.Error != "" {
			return nil, fmt.Errorf("server refused (%d %s): %s", resp.StatusCode, e.Code, e.Error)
		}
		return nil, fmt.Errorf("server answered %s", resp.Status)
	}
	if out != nil {
		if err := json.Unmarshal(raw, out); err != nil {
			return nil, fmt.Errorf("server's answer is not the JSON expected: %w", err)
		}
	}
	return raw, nil
}

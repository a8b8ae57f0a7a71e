package domain

import (
	"errors"
	"strings"
	"testing"
)

func TestValidateChannel(t *testing.T) {
	for _, name := range []string{"a", "chat", "A-Z_a-z.0-9:@/=", "private-x", "presence-room", strings.Repeat("c", 255)} {
		if err := ValidateChannel(name); err != nil {
			t.Errorf("%q: %v", name, err)
		}
	}
	for _, name := range []string{"", " ", "a b", "ü", "chat\n", `a"b`, `a\b`, "a,b", strings.Repeat("c", 256)} {
		err := ValidateChannel(name)
		if !errors.Is(err, ErrInvalidChannel) {
			t.Errorf("%q: %v, want invalid_channel", name, err)
		}
	}
}

func TestAppFromHost(t *testing.T) {
	for host, want := range map[string]string{
		"localhost:8080":       "default",
		"localhost":            "default",
		"127.0.0.1:8080":       "default",
		"[::1]:8080":           "default",
		"chat.localhost:8080":  "chat",
		"CHAT.localhost":       "chat",
		"chat.example.com":     "chat",
		"www.example.com":      "default",
		"chat.localhost.:8080": "chat",
		"example.com":          "default",
		"example.com.:443":     "default",
		"rt.example.com:443":   "rt",
		"chat.127.0.0.1:8080":  "chat",
		"chat.test":            "chat",
		"chat.local:8080":      "chat",
		"chat.internal":        "chat",
		"chat.lan":             "chat",
	} {
		if got := AppFromHost(host); got != want {
			t.Errorf("AppFromHost(%q) = %q, want %q", host, got, want)
		}
	}
}

// TestAppFromHostIn: with the server's domains given, a Host under one
// names its app (the domain itself and www. the default), an IP address
// or localhost reads as without them, and any other name none (ok false),
// as a rebinding page's or a proxy's default server's would.
func TestAppFromHostIn(t *testing.T) {
	domains := []string{"rt.example.com", "example.org"}
	for host, want := range map[string]string{
		"rt.example.com":          "default",
		"RT.example.com.:443":     "default",
		"www.rt.example.com":      "default",
		"chat.rt.example.com:443": "chat",
		"example.org":             "default",
		"chat.example.org":        "chat",
		"127.0.0.1:8080":          "default",
		"[::1]:8080":              "default",
		"localhost:8080":          "default",
		"chat.localhost:8080":     "chat",
		"chat.evil.test:8080":     "",
		"example.com":             "",
		"a.chat.example.org":      "",
		"notexample.org":          "",
		"xrt.example.com":         "",
	} {
		got, ok := AppFromHostIn(host, domains)
		if want == "" && ok || want != "" && (!ok || got != want) {
			t.Errorf("AppFromHostIn(%q) = %q, %v; want %q", host, got, ok, want)
		}
	}
	// A domain under another is a domain, whatever the order.
	for _, list := range [][]string{{"example.com", "rt.example.com"}, {"rt.example.com", "example.com"}} {
		if got, ok := AppFromHostIn("rt.example.com", list); !ok || got != DefaultApp {
			t.Errorf("rt.example.com with %v: %q, %v", list, got, ok)
		}
	}
	if got, ok := AppFromHostIn("chat.evil.test", nil); !ok || got != "chat" {
		t.Errorf("without domains: %q, %v", got, ok)
	}
}

func TestValidateApp(t *testing.T) {
	for _, ok := range []string{"default", "chat", "a-b", "x1"} {
		if err := ValidateApp(ok); err != nil {
			t.Errorf("%q: %v", ok, err)
		}
	}
	for _, bad := range []string{"", "-a", "a-", "A", "a.b", "../x", strings.Repeat("a", 64)} {
		if err := ValidateApp(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

func TestErrorCodes(t *testing.T) {
	err := Errorf(CodeNotAllowed, "no")
	wrapped := errors.Join(errors.New("context"), err)
	if CodeOf(wrapped) != CodeNotAllowed || !errors.Is(wrapped, ErrNotAllowed) || errors.Is(wrapped, ErrTooLarge) {
		t.Fatalf("code lookup through wrapping failed: %v", CodeOf(wrapped))
	}
	if CodeOf(errors.New("plain")) != CodeInternal {
		t.Fatal("a plain error must be internal")
	}
}

func TestEveryEventNameDecodes(t *testing.T) {
	for _, name := range EventNames {
		f, ok := NewFact(name)
		if !ok || f.EventName() != name {
			t.Errorf("%s: NewFact gives %v", name, f)
		}
	}
}

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

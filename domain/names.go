package domain

import "strings"

// DefaultApp is the app of requests whose host has no subdomain.
const DefaultApp = "default"

// MaxChannelLen is the longest channel name, in bytes.
const MaxChannelLen = 255

// Channel name prefixes with a meaning of their own.
const (
	PrivatePrefix  = "private-"
	PresencePrefix = "presence-"
)

// ValidateChannel checks a channel name: 1 to MaxChannelLen characters of
// A-Z a-z 0-9 _ - : . @ / =.
func ValidateChannel(name string) error {
	if name == "" {
		return Errorf(CodeInvalidChannel, "channel name is empty")
	}
	if len(name) > MaxChannelLen {
		return Errorf(CodeInvalidChannel, "channel name is %d characters; the limit is %d", len(name), MaxChannelLen)
	}
	for i := 0; i < len(name); i++ {
		if !channelByte(name[i]) {
			return Errorf(CodeInvalidChannel, "channel name has %q at position %d; allowed are A-Z a-z 0-9 _ - : . @ / =", rune(name[i]), i)
		}
	}
	return nil
}

func channelByte(c byte) bool {
	switch {
	case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		return true
	}
	return strings.IndexByte("_-:.@/=", c) >= 0
}

// IsPresence reports whether channel is a presence channel.
func IsPresence(channel string) bool { return strings.HasPrefix(channel, PresencePrefix) }

// IsPrivate reports whether channel is a private channel.
func IsPrivate(channel string) bool { return strings.HasPrefix(channel, PrivatePrefix) }

// ValidateApp checks an app name: 1 to 63 characters of a-z 0-9 and '-', not
// starting or ending with '-', so that it is a valid DNS label and folder name.
func ValidateApp(name string) error {
	if name == "" || len(name) > 63 {
		return Errorf(CodeNotFound, "app name must be 1 to 63 characters")
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		ok := c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' && i > 0 && i < len(name)-1
		if !ok {
			return Errorf(CodeNotFound, "app name %q is not a DNS label", name)
		}
	}
	return nil
}

// AppFromHost returns the app a Host header names: its first label when the
// host has a subdomain (chat.localhost:8080 and chat.example.com are
// "chat"), otherwise DefaultApp. A name of two labels is a domain without
// a subdomain (example.com) unless its second is a local name's top
// label (localTLDs: chat.test, chat.local); under a public suffix of two
// labels (example.co.uk) the first label still reads as an app. An IP
// address never names an app.
func AppFromHost(host string) string {
	h := host
	if strings.HasPrefix(h, "[") { // IPv6 literal
		return DefaultApp
	}
	if i := strings.LastIndexByte(h, ':'); i >= 0 {
		h = h[:i]
	}
	h = strings.ToLower(strings.TrimSuffix(h, "."))
	if isIPv4(h) {
		return DefaultApp
	}
	first, rest, ok := strings.Cut(h, ".")
	if !ok || rest == "" || first == "" || first == "www" {
		return DefaultApp
	}
	if !strings.Contains(rest, ".") && !localTLDs[rest] {
		return DefaultApp // example.com
	}
	return first
}

// AppFromHostIn is AppFromHost for a server that serves the given
// domains (fazt serve --domain): a host that is one of them, or www. of
// one, is DefaultApp, and one label under one names that app. An IP
// address, and localhost or a name under it, read as AppFromHost has it;
// an empty host (HTTP/1.0) names none.
// ok is false for any other host: a name someone else pointed at the
// server (DNS rebinding, a proxy's default server block) names no app.
// With no domains, it is AppFromHost.
func AppFromHostIn(host string, domains []string) (app string, ok bool) {
	if len(domains) == 0 || strings.HasPrefix(host, "[") {
		return AppFromHost(host), true
	}
	h := host
	if i := strings.LastIndexByte(h, ':'); i >= 0 {
		h = h[:i]
	}
	h = strings.ToLower(strings.TrimSuffix(h, "."))
	if isIPv4(h) || h == "localhost" || strings.HasSuffix(h, ".localhost") {
		return AppFromHost(host), true
	}
	// The domain itself first, in any order of the list: with example.com
	// and rt.example.com, rt.example.com is a domain, not app rt.
	for _, d := range domains {
		if h == d || h == "www."+d {
			return DefaultApp, true
		}
	}
	for _, d := range domains {
		if first, ok := strings.CutSuffix(h, "."+d); ok && first != "" && !strings.Contains(first, ".") {
			return first, true
		}
	}
	return "", false
}

// localTLDs are the top labels of names that are not on the public
// Internet: reserved for loopback, testing and private networks (RFC 6761,
// RFC 6762's mDNS .local, ICANN's .internal) or in common use on LANs. In
// them a name of two labels, chat.test, is a subdomain.
var localTLDs = map[string]bool{
	"localhost": true, "test": true, "local": true, "internal": true,
	"lan": true, "home": true, "corp": true,
}

func isIPv4(h string) bool {
	parts := strings.Split(h, ".")
	if len(parts) != 4 {
		return false
	}
	for _, p := range parts {
		if p == "" || len(p) > 3 {
			return false
		}
		for i := 0; i < len(p); i++ {
			if p[i] < '0' || p[i] > '9' {
				return false
			}
		}
	}
	return true
}

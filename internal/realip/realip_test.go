package realip

import (
	"net/http"
	"strings"
	"testing"
)

func TestClient(t *testing.T) {
	for _, c := range []struct {
		name, proxies, remote string
		xff                   []string
		want                  string
	}{
		{"no proxies: the header is ignored", "", "198.51.100.1:4000", []string{"203.0.113.7"}, "198.51.100.1:4000"},
		{"a peer that is not a proxy", "127.0.0.1", "198.51.100.1:4000", []string{"203.0.113.7"}, "198.51.100.1:4000"},
		{"one proxy", "127.0.0.1", "127.0.0.1:4000", []string{"203.0.113.7"}, "203.0.113.7"},
		{"what the client wrote is left of the proxies'", "10.0.0.0/8", "10.0.0.1:4000", []string{"1.2.3.4, 203.0.113.7, 10.0.0.2"}, "203.0.113.7"},
		{"lines in order", "10.0.0.0/8", "10.0.0.1:4000", []string{"1.2.3.4", "203.0.113.7", "10.0.0.2"}, "203.0.113.7"},
		{"all proxies: the leftmost", "10.0.0.0/8", "10.0.0.1:4000", []string{"10.1.1.1, 10.0.0.2"}, "10.1.1.1"},
		{"no header", "127.0.0.1", "127.0.0.1:4000", nil, "127.0.0.1:4000"},
		{"an empty header", "127.0.0.1", "127.0.0.1:4000", []string{""}, "127.0.0.1:4000"},
		{"an entry that is not an address", "127.0.0.1", "127.0.0.1:4000", []string{"203.0.113.7, unknown"}, "127.0.0.1:4000"},
		{"a bad entry past the client is not read", "127.0.0.1", "127.0.0.1:4000", []string{"junk, 203.0.113.7"}, "203.0.113.7"},
		{"ports", "127.0.0.1", "127.0.0.1:4000", []string{"203.0.113.7:5555"}, "203.0.113.7"},
		{"IPv6", "::1", "[::1]:4000", []string{"[2001:db8::7]:5555"}, "2001:db8::7"},
		{"IPv6 without a port", "::1", "[::1]:4000", []string{"2001:db8::7"}, "2001:db8::7"},
		{"a zone is not an address", "::1", "[::1]:4000", []string{"fe80::1%eth0"}, "[::1]:4000"},
		{"an IPv4 peer mapped to IPv6", "127.0.0.1", "[::ffff:127.0.0.1]:4000", []string{"203.0.113.7"}, "203.0.113.7"},
		{"a mapped client", "127.0.0.1", "127.0.0.1:4000", []string{"::ffff:203.0.113.7"}, "203.0.113.7"},
		{"a peer address that does not parse", "127.0.0.1", "pipe", []string{"203.0.113.7"}, "pipe"},
		{"a proxy listed mapped into IPv6", "::ffff:127.0.0.1", "127.0.0.1:4000", []string{"203.0.113.7"}, "203.0.113.7"},
		{"a range listed mapped into IPv6", "::ffff:10.0.0.0/104", "10.9.9.9:4000", []string{"203.0.113.7, 10.0.0.2"}, "203.0.113.7"},
		{"a peer with a zone", "fe80::1", "[fe80::1%eth0]:4000", []string{"203.0.113.7"}, "203.0.113.7"},
		{"a bad entry between proxies' lines", "10.0.0.0/8", "10.0.0.1:4000", []string{"203.0.113.7", "junk", "10.0.0.2"}, "10.0.0.1:4000"},
		{"32 entries are read", "10.0.0.0/8", "10.0.0.1:4000", []string{"203.0.113.7" + strings.Repeat(", 10.0.0.2", 31)}, "203.0.113.7"},
		{"past 32, the peer", "10.0.0.0/8", "10.0.0.1:4000", []string{"203.0.113.7" + strings.Repeat(", 10.0.0.2", 32)}, "10.0.0.1:4000"},
		{"a long header's client", "10.0.0.0/8", "10.0.0.1:4000", []string{strings.Repeat("junk,", 1<<16) + "203.0.113.7"}, "203.0.113.7"},
	} {
		t.Run(c.name, func(t *testing.T) {
			p, err := Parse(c.proxies)
			if err != nil {
				t.Fatal(err)
			}
			h := http.Header{}
			for _, v := range c.xff {
				h.Add("X-Forwarded-For", v)
			}
			if got := p.Client(c.remote, h); got != c.want {
				t.Fatalf("Client(%q, %q) with proxies %q = %q, want %q", c.remote, c.xff, c.proxies, got, c.want)
			}
			r, _ := http.NewRequest("GET", "/", nil)
			r.RemoteAddr, r.Header = c.remote, h
			r2 := p.Request(r)
			if r2.RemoteAddr != c.want || r.RemoteAddr != c.remote {
				t.Fatalf("Request: %q, and the request given now %q", r2.RemoteAddr, r.RemoteAddr)
			}
		})
	}
}

func TestParse(t *testing.T) {
	p, err := Parse(" 127.0.0.1, 10.1.2.3/8 ,::1,,2001:db8::/32, ::ffff:192.168.0.1, ::ffff:172.16.0.0/108 ")
	if err != nil {
		t.Fatal(err)
	}
	if got := p.String(); got != "127.0.0.1/32,10.0.0.0/8,::1/128,2001:db8::/32,192.168.0.1/32,172.16.0.0/12" {
		t.Fatalf("String() = %q", got)
	}
	for _, bad := range []string{"nope", "10.0.0.0/33", "fe80::1%eth0", "127.0.0.1:80", "localhost", "::ffff:0.0.0.0/80"} {
		if _, err := Parse(bad); err == nil {
			t.Errorf("Parse(%q) took it", bad)
		}
	}
}

// Package realip finds a request's client address behind reverse proxies
// the operator trusts, from X-Forwarded-For.
package realip

import (
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"strings"
)

// Proxies are the addresses of trusted reverse proxies. The zero value
// trusts none: X-Forwarded-For, which any client may send, is ignored.
type Proxies struct {
	prefixes []netip.Prefix
}

// Parse reads a comma-separated list of addresses and CIDR ranges
// ("127.0.0.1, 10.0.0.0/8, ::1").
func Parse(list string) (Proxies, error) {
	var p Proxies
	for _, f := range strings.Split(list, ",") {
		f = strings.TrimSpace(f)
		if f == "" {
			continue
		}
		if pre, err := netip.ParsePrefix(f); err == nil {
			// An IPv4 range written mapped into IPv6 is the IPv4 range:
			// addresses are compared unmapped.
			if a := pre.Addr(); a.Is4In6() {
				if pre.Bits() < 96 {
					return Proxies{}, fmt.Errorf("%q mixes IPv4-mapped and other IPv6 addresses: give the IPv4 range", f)
				}
				pre = netip.PrefixFrom(a.Unmap(), pre.Bits()-96)
			}
			p.prefixes = append(p.prefixes, pre.Masked())
			continue
		}
		a, err := netip.ParseAddr(f)
		if err != nil || a.Zone() != "" {
			return Proxies{}, fmt.Errorf("%q is not an IP address or a CIDR range such as 10.0.0.0/8", f)
		}
		a = a.Unmap()
		p.prefixes = append(p.prefixes, netip.PrefixFrom(a, a.BitLen()))
	}
	return p, nil
}

// String lists the ranges as Parse takes them.
func (p Proxies) String() string {
	s := make([]string, len(p.prefixes))
	for i, pre := range p.prefixes {
		s[i] = pre.String()
	}
	return strings.Join(s, ",")
}

// trusts reports whether a is one of the proxies (its zone, for a
// link-local address, aside).
func (p Proxies) trusts(a netip.Addr) bool {
	a = a.Unmap().WithZone("")
	for _, pre := range p.prefixes {
		if pre.Contains(a) {
			return true
		}
	}
	return false
}

// maxHops bounds how many X-Forwarded-For entries Client reads: past it,
// a header of many proxies, or a long one, is not read further.
const maxHops = 32

// Client returns the address of the client a request with remoteAddr (the
// peer's "ip:port") and header came from. When the peer is a trusted
// proxy, that is the rightmost address of X-Forwarded-For (all of its
// lines, in order) that is not a trusted proxy, as each proxy appends the
// address it was reached from; the leftmost when all are; the peer's when
// the header is missing, or an entry before the client's cannot be read
// (a proxy that is not one of ours wrote it), or there are more than
// maxHops of them. The answer is the address alone, without a port.
// Otherwise it is remoteAddr as it is.
func (p Proxies) Client(remoteAddr string, header http.Header) string {
	if len(p.prefixes) == 0 {
		return remoteAddr
	}
	peer, err := netip.ParseAddrPort(remoteAddr)
	if err != nil || !p.trusts(peer.Addr()) {
		return remoteAddr
	}
	lines := header.Values("X-Forwarded-For")
	found, hops := netip.Addr{}, 0
	for i := len(lines) - 1; i >= 0; i-- {
		// From the right, an entry at a time: the walk stops at the
		// client's, so the rest of a long header is never split.
		for rest := lines[i]; ; {
			entry := rest
			if k := strings.LastIndexByte(rest, ','); k >= 0 {
				entry, rest = rest[k+1:], rest[:k]
			} else {
				rest = ""
			}
			if hops++; hops > maxHops {
				return remoteAddr
			}
			a, ok := parseHop(strings.TrimSpace(entry))
			if !ok {
				return remoteAddr
			}
			found = a
			if !p.trusts(a) {
				return a.String()
			}
			if rest == "" {
				break
			}
		}
	}
	if !found.IsValid() {
		return remoteAddr
	}
	return found.String()
}

// parseHop reads one X-Forwarded-For entry: an address, with a port or
// not (IPv6 in brackets then).
func parseHop(s string) (netip.Addr, bool) {
	if a, err := netip.ParseAddr(s); err == nil {
		return a.Unmap(), a.Zone() == ""
	}
	if host, _, err := net.SplitHostPort(s); err == nil {
		if a, err := netip.ParseAddr(host); err == nil && a.Zone() == "" {
			return a.Unmap(), true
		}
	}
	return netip.Addr{}, false
}

// Request returns r with RemoteAddr set to its client's address (Client),
// or r itself when that is unchanged. The new request is a shallow copy:
// net/http cleans up after the request it made only (a multipart form's
// temporary files among it), so handlers behind it must not parse one.
func (p Proxies) Request(r *http.Request) *http.Request {
	c := p.Client(r.RemoteAddr, r.Header)
	if c == r.RemoteAddr {
		return r
	}
	r2 := new(http.Request)
	*r2 = *r
	r2.RemoteAddr = c
	return r2
}

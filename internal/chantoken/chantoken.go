// Package chantoken is the token that admits a client to a private
// channel: an HMAC-signed JWT of the app's secret, whose claims the
// WebSocket server checks (transport/ws) and an app's JS signs
// (fazt.realtime.channelToken). One definition for both sides.
package chantoken

import (
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// Claims are a channel token's claims. Channel must name the channel
// exactly; App, when set, binds the token to one app (apps may share a
// secret), and Client to one connection's client id. exp and nbf are
// honoured when present.
type Claims struct {
	Channel string `json:"channel"`
	App     string `json:"app,omitempty"`
	Client  string `json:"client,omitempty"`
	jwt.RegisteredClaims
}

// Methods returns the signing methods a token may use: HMAC only, so
// that a token naming another algorithm (none, RSA with the secret as its
// key) is refused. A new slice each call: nothing can widen the list.
func Methods() []string { return []string{"HS256", "HS384", "HS512"} }

// Sign makes a token of c, signed with secret by HS256, issued now and
// expiring at exp.
func Sign(secret string, c Claims, now, exp time.Time) (string, error) {
	c.IssuedAt = jwt.NewNumericDate(now)
	c.ExpiresAt = jwt.NewNumericDate(exp)
	return jwt.NewWithClaims(jwt.SigningMethodHS256, c).SignedString([]byte(secret))
}

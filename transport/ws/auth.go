package ws

import (
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/fazt-realtime/fazt/domain"
)

// channelClaims are the claims of a token that admits a client to a
// private channel. Channel must name the channel exactly; App, when set,
// binds the token to one app (apps may share a secret), and Client to one
// connection's client id. exp and nbf are honoured when present.
type channelClaims struct {
	Channel string `json:"channel"`
	App     string `json:"app,omitempty"`
	Client  string `json:"client,omitempty"`
	jwt.RegisteredClaims
}

// checkChannelToken verifies that token, an HMAC-signed JWT made with the
// secret of app, admits client to channel, and returns its expiry (zero
// for none). Every failure is not_allowed.
func checkChannelToken(secret, token, app, channel, client string) (time.Time, error) {
	if secret == "" {
		return time.Time{}, domain.Errorf(domain.CodeNotAllowed, "private channels are closed: the app has no secret")
	}
	if token == "" {
		return time.Time{}, domain.Errorf(domain.CodeNotAllowed, "%s is private: subscribe with a token", channel)
	}
	var claims channelClaims
	_, err := jwt.ParseWithClaims(token, &claims, func(*jwt.Token) (any, error) { return []byte(secret), nil },
		jwt.WithValidMethods([]string{"HS256", "HS384", "HS512"}))
	if err != nil {
		return time.Time{}, domain.Errorf(domain.CodeNotAllowed, "token refused: %v", err)
	}
	if claims.Channel != channel {
		return time.Time{}, domain.Errorf(domain.CodeNotAllowed, "token is for channel %q, not %q", claims.Channel, channel)
	}
	if claims.App != "" && claims.App != app {
		return time.Time{}, domain.Errorf(domain.CodeNotAllowed, "token is for app %q, not %q", claims.App, app)
	}
	if claims.Client != "" && claims.Client != client {
		return time.Time{}, domain.Errorf(domain.CodeNotAllowed, "token is for another client")
	}
	if claims.ExpiresAt == nil {
		return time.Time{}, nil
	}
	return claims.ExpiresAt.Time, nil
}

package ws

import (
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/fazt-realtime/fazt/domain"
	"github.com/fazt-realtime/fazt/internal/chantoken"
)

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
	var claims chantoken.Claims
	_, err := jwt.ParseWithClaims(token, &claims, func(*jwt.Token) (any, error) { return []byte(secret), nil },
		jwt.WithValidMethods(chantoken.Methods()))
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

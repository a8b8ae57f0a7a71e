package ws

import (
	"context"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

func signToken(t testing.TB, secret string, claims map[string]any) string {
	t.Helper()
	s, err := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims(claims)).SignedString([]byte(secret))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// TestExpiryNotArmedAfterTheSession: a subscribe that finishes after its
// connection's session has ended arms no timer for its token's expiry,
// which would hold the connection until then; one that finishes within
// the session does, until the session's end stops it.
func TestExpiryNotArmedAfterTheSession(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	c := &conn{ctx: ctx}
	c.expireAt("private-a", time.Now().Add(time.Hour))
	if len(c.expiries) != 1 {
		t.Fatalf("within the session: %d timers", len(c.expiries))
	}
	e := c.expiries["private-a"]
	c.stopExpiries()
	if e.timer.Stop() {
		t.Fatal("the session's end left its timer running")
	}
	cancel()
	c.expireAt("private-b", time.Now().Add(time.Hour))
	if len(c.expiries) != 0 {
		t.Fatalf("after the session: %d timers", len(c.expiries))
	}
}

package ws

import (
	"testing"

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

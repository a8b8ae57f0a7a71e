package ws

import "testing"

// TestSecretParams: a parameter is a credential by one of its words, split
// at punctuation and at camel case, not by a word that merely contains one
// (author, max_tokens).
func TestSecretParams(t *testing.T) {
	for _, name := range []string{
		"token", "access_token", "authToken", "apiKey", "api-key", "x-api-key", "API_KEY", "key",
		"accessKey", "private_key", "password", "pwd", "passcode", "X-Amz-Signature", "sig", "jwt",
		"session", "sessionId", "credentials", "Authorization", "otp",
	} {
		if !isSecretParam(name) {
			t.Errorf("%q kept", name)
		}
	}
	for _, name := range []string{"", "room", "name", "author", "authority", "max_tokens", "oauth_provider", "keyboard", "monkey", "design", "v"} {
		if isSecretParam(name) {
			t.Errorf("%q redacted", name)
		}
	}
}

package ws

import (
	"maps"
	"testing"
)

// TestSecretParams: a parameter is a credential when its lower-cased name
// holds a credential's stem anywhere, split or run together, in any case;
// a name that merely holds one (design, keyboard) is redacted too, but for
// the few harmless names listed whole (author, max_tokens).
func TestSecretParams(t *testing.T) {
	for _, name := range []string{
		"token", "access_token", "authToken", "apiKey", "api-key", "x-api-key", "API_KEY", "key",
		"accessKey", "private_key", "password", "pwd", "passcode", "X-Amz-Signature", "sig", "jwt",
		"session", "sessionId", "credentials", "Authorization", "otp", "sid", "PHPSESSID",
		"keyboard", "monkey", "design", "author_token", "maxTokens", "AUTHORITY_KEY",
	} {
		if !isSecretParam(name) {
			t.Errorf("%q kept", name)
		}
	}
	for _, name := range []string{"", "room", "name", "author", "Author", "authority", "max_tokens", "oauth_provider", "channel", "v"} {
		if isSecretParam(name) {
			t.Errorf("%q redacted", name)
		}
	}
}

// TestCredentialsRunTogetherAreRedacted: the names a review found recorded
// in clear under the rule that looked for whole words (the stem inside a
// longer word, with a digit after it, or a word the list lacked) are
// redacted, so none is kept in the log for good.
func TestCredentialsRunTogetherAreRedacted(t *testing.T) {
	for _, name := range []string{
		"authtoken", "accesstoken", "APIToken", "token1", "bearer", "clientsecret", "code", "otp",
		"jwt", "sig", "signature", "session", "sessionid", "passwd", "pwd", "user_pw", "credential",
		"credentials", "apikey", "creds", "auth_code", "id_token2", "Cookie", "ticket", "nonce",
	} {
		if !isSecretParam(name) {
			t.Errorf("%q kept", name)
		}
	}
}

// TestRedactQueryHidesOnlyCredentials: the log's copy of a query has each
// credential's value replaced, the other values as sent, and the query
// the hooks see is left as it was.
func TestRedactQueryHidesOnlyCredentials(t *testing.T) {
	q := map[string]string{"APIToken": "t1", "clientsecret": "s1", "room": "lobby", "author": "ann"}
	got := redactQuery(q)
	want := map[string]string{"APIToken": redacted, "clientsecret": redacted, "room": "lobby", "author": "ann"}
	if !maps.Equal(got, want) {
		t.Errorf("recorded %v, want %v", got, want)
	}
	if q["APIToken"] != "t1" || q["clientsecret"] != "s1" {
		t.Errorf("the hooks' query was changed: %v", q)
	}
}

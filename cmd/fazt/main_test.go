package main

import (
	"os"
	"strings"
	"testing"
)

// TestMain runs the package's tests without the FAZT_* variables of the
// shell that started them: the commands read them as their defaults (a
// developer's FAZT_DOMAIN or FAZT_ADMIN_KEY would change what a test's
// command asks of its server). A test that wants one sets it itself.
func TestMain(m *testing.M) {
	for _, kv := range os.Environ() {
		if name, _, _ := strings.Cut(kv, "="); strings.HasPrefix(name, "FAZT_") {
			os.Unsetenv(name)
		}
	}
	os.Exit(m.Run())
}

package domain

import (
	"os/exec"
	"strings"
	"testing"
)

// TestDomainImportsOnlyTheStandardLibrary keeps the domain free of
// Watermill, SQLite, WebSocket and goja code.
func TestDomainImportsOnlyTheStandardLibrary(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", "-f", "{{if not .Standard}}{{.ImportPath}}{{end}}", ".").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	for _, p := range strings.Fields(string(out)) {
		if p != "github.com/fazt-realtime/fazt/domain" {
			t.Errorf("domain depends on %s", p)
		}
	}
}

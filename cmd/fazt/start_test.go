package main

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
)

// TestFailedStartSaysWhy: a server that cannot start returns the reason,
// having closed what it had opened, rather than crash.
func TestFailedStartSaysWhy(t *testing.T) {
	dir := t.TempDir()
	_, err := startNode(context.Background(), nodeConfig{DBPath: filepath.Join(dir, "fazt.db"), AppsDir: dir, Durability: "fsync"})
	if err == nil || !strings.Contains(err.Error(), "durability") {
		t.Fatalf("start with durability fsync: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := startNode(ctx, nodeConfig{DBPath: filepath.Join(dir, "fazt.db"), AppsDir: dir}); err == nil {
		t.Fatal("a start whose context had ended succeeded")
	}
}

package js

import (
	"os"
	"path/filepath"
	"testing"
)

// TestCgroupMemory reads the least memory limit of the process's cgroups
// from a made-up /proc/self/cgroup and hierarchy: v2's memory.max up the
// tree ("max" is none), v1's limit_in_bytes (unlimited is none) and its
// hierarchical limit, and nothing when there is no file.
func TestCgroupMemory(t *testing.T) {
	write := func(file, text string) {
		t.Helper()
		if err := os.MkdirAll(filepath.Dir(file), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(file, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	v2 := t.TempDir()
	write(filepath.Join(v2, "cgroup"), "0::/a/b\n")
	write(filepath.Join(v2, "sys/a/b/memory.max"), "max\n")
	write(filepath.Join(v2, "sys/a/memory.max"), "1073741824\n")
	write(filepath.Join(v2, "sys/memory.max"), "4294967296\n")
	if got := cgroupMemory(filepath.Join(v2, "cgroup"), filepath.Join(v2, "sys")); got != 1<<30 {
		t.Errorf("v2: %d, want %d", got, 1<<30)
	}
	const unlimited = "9223372036854771712\n" // v1's "no limit"
	v1 := t.TempDir()
	write(filepath.Join(v1, "cgroup"), "5:cpu,cpuacct:/y\n4:memory:/x\n1:name=systemd:/z\n")
	write(filepath.Join(v1, "sys/memory/x/memory.limit_in_bytes"), "3221225472\n")
	write(filepath.Join(v1, "sys/memory/x/memory.stat"), "cache 0\nhierarchical_memory_limit 2147483648\nrss 1\n")
	write(filepath.Join(v1, "sys/memory/memory.limit_in_bytes"), unlimited)
	if got := cgroupMemory(filepath.Join(v1, "cgroup"), filepath.Join(v1, "sys")); got != 2<<30 {
		t.Errorf("v1, a parent's limit: %d, want %d", got, 2<<30)
	}
	// Its own limit; then a container's own view of its hierarchy, where
	// the path /proc/self/cgroup gives is not mounted.
	write(filepath.Join(v1, "sys/memory/x/memory.stat"), "hierarchical_memory_limit "+unlimited)
	if got := cgroupMemory(filepath.Join(v1, "cgroup"), filepath.Join(v1, "sys")); got != 3<<30 {
		t.Errorf("v1, its own limit: %d, want %d", got, 3<<30)
	}
	write(filepath.Join(v1, "sys/memory/memory.limit_in_bytes"), "1073741824\n")
	if err := os.RemoveAll(filepath.Join(v1, "sys/memory/x")); err != nil {
		t.Fatal(err)
	}
	if got := cgroupMemory(filepath.Join(v1, "cgroup"), filepath.Join(v1, "sys")); got != 1<<30 {
		t.Errorf("v1, the container's view: %d, want %d", got, 1<<30)
	}
	write(filepath.Join(v1, "sys/memory/memory.limit_in_bytes"), unlimited)
	if got := cgroupMemory(filepath.Join(v1, "cgroup"), filepath.Join(v1, "sys")); got != 0 {
		t.Errorf("v1 unlimited: %d, want 0", got)
	}
	none := t.TempDir()
	if got := cgroupMemory(filepath.Join(none, "cgroup"), none); got != 0 {
		t.Errorf("none: %d", got)
	}
	write(filepath.Join(none, "meminfo"), "MemTotal:       24684476 kB\nMemFree:        1 kB\n")
	if got := machineMemory(filepath.Join(none, "meminfo")); got != 24684476<<10 {
		t.Errorf("meminfo: %d", got)
	}
	if got := machineMemory(filepath.Join(none, "missing")); got != 0 {
		t.Errorf("no meminfo: %d", got)
	}
}

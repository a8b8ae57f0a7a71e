package main

import (
	"fmt"
	"strconv"
	"strings"
)

// parseMemory reads a memory size as --js-memory takes it: a whole number
// of bytes, or of KiB, MiB, GiB or TiB with that suffix; "off" for none
// (-1) and "" for the default (0).
func parseMemory(s string) (int64, error) {
	s = strings.TrimSpace(s)
	switch s {
	case "":
		return 0, nil
	case "off":
		return -1, nil
	}
	units := []struct {
		suffix string
		shift  uint
	}{{"KiB", 10}, {"MiB", 20}, {"GiB", 30}, {"TiB", 40}, {"B", 0}}
	shift := uint(0)
	for _, u := range units {
		if strings.HasSuffix(s, u.suffix) {
			s, shift = strings.TrimSpace(strings.TrimSuffix(s, u.suffix)), u.shift
			break
		}
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n <= 0 || n > (1<<62)>>shift {
		return 0, fmt.Errorf("want a whole number of bytes, KiB, MiB, GiB or TiB above 0 (512MiB), or off")
	}
	return n << shift, nil
}

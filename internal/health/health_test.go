package health

import (
	"errors"
	"testing"
)

func TestFailing(t *testing.T) {
	var f Failing
	if since, err := f.State(); err != nil || !since.IsZero() || f.Works() {
		t.Fatalf("a new part: %v since %v", err, since)
	}
	if !f.Fail(errors.New("disk full")) {
		t.Fatal("the first failure did not begin one")
	}
	first, _ := f.State()
	if f.Fail(errors.New("disk still full")) {
		t.Fatal("a second failure began another")
	}
	if since, err := f.State(); err == nil || err.Error() != "disk still full" || !since.Equal(first) {
		t.Fatalf("after two failures: %v since %v, want the latest reason since the first (%v)", err, since, first)
	}
	if !f.Works() || f.Works() {
		t.Fatal("Works did not say, once, that the part had been failing")
	}
	if _, err := f.State(); err != nil {
		t.Fatalf("after it works: %v", err)
	}
}

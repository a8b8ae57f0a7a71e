package domain

import (
	"strings"
	"testing"
	"unicode/utf8"
)

// The checks every message's data goes through before it is appended:
// the scans of numbers (at the log) and of depth (on the way in), beside
// utf8.Valid for scale. small is `fazt bench`'s message; chat is a chat
// line of about 1 KB.
var (
	benchSmall = []byte(`{"m":"ft:1796604570255123456","p":""}`)
	benchChat  = []byte(`{"text":"` + strings.Repeat("see you at 10:30 tomorrow, by the east gate ", 22) + `","name":"ann","at":1796604570255}`)
)

func BenchmarkCheckData(b *testing.B) {
	for _, c := range []struct {
		name string
		data []byte
	}{{"small", benchSmall}, {"chat", benchChat}} {
		b.Run("numbers/"+c.name, func(b *testing.B) {
			b.SetBytes(int64(len(c.data)))
			for b.Loop() {
				if CheckNumbers(c.data) != nil {
					b.Fatal("refused")
				}
			}
		})
		b.Run("depth/"+c.name, func(b *testing.B) {
			b.SetBytes(int64(len(c.data)))
			for b.Loop() {
				if CheckDepth(c.data, 32) != nil {
					b.Fatal("refused")
				}
			}
		})
		b.Run("utf8/"+c.name, func(b *testing.B) {
			b.SetBytes(int64(len(c.data)))
			for b.Loop() {
				if !utf8.Valid(c.data) {
					b.Fatal("refused")
				}
			}
		})
	}
}

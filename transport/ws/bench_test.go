package ws

import (
	"fmt"
	"io"
	"net"
	"testing"

	"github.com/fazt-realtime/fazt/domain"
)

// BenchmarkEncodeMessage builds one live message frame's JSON, the part of
// a broadcast done once however many receive it.
func BenchmarkEncodeMessage(b *testing.B) {
	ev := &domain.MessageBroadcast{App: "app", Channel: "chat-room", Offset: 123456, Epoch: "0123456789abcdef",
		Data: []byte(`{"text":"hello, world","name":"ann","at":1700000000000}`)}
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		_ = Encoder{}.Message(ev, 1700000000000)
	}
}

// BenchmarkReplayFrames builds a page of 1000 replayed frames, as a replay
// does for every page it reads.
func BenchmarkReplayFrames(b *testing.B) {
	data := []byte(`{"text":"hello, world","n":12345}`)
	frames := make([][]byte, 0, 1000)
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		frames = frames[:0]
		for j := 0; j < 1000; j++ {
			frames = append(frames, appendMessage(make([]byte, 0, 96+len("bench")+len(data)), "bench", uint64(j), data, 1700000000000, true))
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*1000), "ns/frame")
}

// BenchmarkCoalescedWrite writes frames to a loopback TCP socket the way a
// connection's writer does: every queued frame framed into one buffer and
// one write(2). ns/frame falls with frames per write, since the kernel's
// cost per write dwarfs the cost per frame.
func BenchmarkCoalescedWrite(b *testing.B) {
	frame := Encoder{}.Message(&domain.MessageBroadcast{Channel: "room", Offset: 123456,
		Data: []byte(`{"text":"hello, world","at":1700000000000}`)}, 1700000000000)
	for _, per := range []int{1, 5, 20, 100} {
		b.Run(fmt.Sprintf("frames=%d", per), func(b *testing.B) {
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				b.Fatal(err)
			}
			defer ln.Close()
			done := make(chan struct{})
			go func() {
				defer close(done)
				c, err := ln.Accept()
				if err != nil {
					return
				}
				defer c.Close()
				io.Copy(io.Discard, c)
			}()
			c, err := net.Dial("tcp", ln.Addr().String())
			if err != nil {
				b.Fatal(err)
			}
			queue := make([][]byte, per)
			for i := range queue {
				queue[i] = frame
			}
			var buf []byte
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				buf = buf[:0]
				for _, f := range queue {
					buf = appendFrameHeader(buf, opText, len(f))
					buf = append(buf, f...)
				}
				if _, err := c.Write(buf); err != nil {
					b.Fatal(err)
				}
			}
			b.StopTimer()
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*per), "ns/frame")
			c.Close()
			<-done
		})
	}
}

// BenchmarkDecodeRequest parses client frames: a subscribe, as every
// connection sends, and a publish with an object of data.
func BenchmarkDecodeRequest(b *testing.B) {
	for _, tc := range []struct{ name, frame string }{
		{"subscribe", `{"type":"subscribe","channel":"room-12345","offset":0,"id":1}`},
		{"publish", `{"type":"publish","channel":"room-12345","data":{"text":"hello, world","n":12345},"id":"p7"}`},
	} {
		body := []byte(tc.frame)
		b.Run(tc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := decodeRequest(body, 32); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

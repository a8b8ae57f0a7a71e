//go:build linux && !386 && !s390x

package ws

import (
	"bytes"
	"cmp"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/fazt-realtime/fazt/internal/uring"
)

// floorReaderEnv, when set to "address connections", makes
// TestFloorReader the reader side of BenchmarkLoopbackRound.
const floorReaderEnv = "FAZT_FLOOR_READER"

// BenchmarkLoopbackRound measures the floor under a flusher's round: one
// send(2) of a 250-byte frame to each of 1000 loopback sockets, through
// the flusher's own rawWrite, with nothing else in the process and no
// yields. The readers are another process pinned to another processor,
// as `fazt bench` is, each socket read by a goroutine of its own; rounds
// start 20 ms apart, as at `fanout --rate 50`, so the readers sleep
// between them. The sender is pinned to the first processor. What a
// round costs here, a server's round of 1000 deliveries cannot beat on
// the same machine: it is the kernel's price for the writes, which on
// loopback includes the readers' side of TCP and their wake-ups.
//
// ns/op is the mean round (the sleeps between rounds left out), us/write
// that divided by the writes; p50-ns/round and p99-ns/round are the
// rounds', and p99-ns/write is the p99, over every write, of the time
// from its round's start to the write's end: a delivery's place in the
// round, the floor under its latency. (Each write's end is read from the
// clock, tens of nanoseconds a write that the flusher does not spend;
// ns/op and us/write include them too.) overruns counts the rounds that
// started late because the one before ran past 20 ms; the next starts
// 20 ms after such a round rather than at once.
//
// Its two parts write as the flushers can: "send", a send(2) for each
// write; "io_uring", the writes in batches of 64 (ringEntries), one
// system call each, every write of a batch ending with it.
//
//	go test -run '^$' -bench LoopbackRound -benchtime 500x ./transport/ws
func BenchmarkLoopbackRound(b *testing.B) {
	b.Run("send", func(b *testing.B) { loopbackRound(b, false) })
	b.Run("io_uring", func(b *testing.B) { loopbackRound(b, true) })
}

func loopbackRound(b *testing.B, ring bool) {
	cpus, err := floorCPUs()
	if err != nil {
		b.Skip(err)
	}
	const conns, size = 1000, 250
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	defer ln.Close()
	var readerOut bytes.Buffer // what the reader printed, read once it has exited
	reader, err := startFloorReader(ln.Addr().String(), conns, cpus[1], &readerOut)
	if err != nil {
		b.Fatal(err)
	}
	var readerErr error
	exited := make(chan struct{})
	go func() {
		readerErr = reader.Wait()
		close(exited)
	}()
	// readerGone reports why the reader exited, if it has.
	readerGone := func() (string, bool) {
		select {
		case <-exited:
			return fmt.Sprintf("the reader exited (%v): %s", readerErr, bytes.TrimSpace(readerOut.Bytes())), true
		default:
			return "", false
		}
	}
	defer func() {
		reader.Process.Kill()
		<-exited
	}()
	var socks []net.Conn
	defer func() {
		for _, c := range socks {
			c.Close()
		}
	}()
	// A reader that dies before it has dialled them all ends the wait.
	accepted := make(chan struct{})
	go func() {
		select {
		case <-exited:
			ln.Close()
		case <-accepted:
		}
	}()
	ln.(*net.TCPListener).SetDeadline(time.Now().Add(30 * time.Second))
	for len(socks) < conns {
		c, err := ln.Accept()
		if err != nil {
			if why, gone := readerGone(); gone {
				b.Fatalf("accept %d of %d: %s", len(socks), conns, why)
			}
			b.Fatalf("accept %d of %d: %v", len(socks), conns, err)
		}
		socks = append(socks, c)
	}
	close(accepted)
	raws := make([]syscall.RawConn, conns)
	for i, c := range socks {
		if raws[i], err = c.(*net.TCPConn).SyscallConn(); err != nil {
			b.Fatal(err)
		}
	}

	unpin, err := pinThread(cpus[0])
	if err != nil {
		b.Skip("pin the sender:", err)
	}
	defer unpin()
	f := newFlusher(0, 0, false, slog.Default())
	f.wbuf = appendFrameHeader(nil, opText, size-4) // 4 bytes at this size
	f.wbuf = append(f.wbuf, make([]byte, size-len(f.wbuf))...)
	var r *uring.Ring
	var ops []uring.Op
	if ring {
		if r, err = uring.New(ringEntries); err != nil {
			b.Skip(err)
		}
		defer r.Close()
		ops = make([]uring.Op, conns)
		for i, rc := range raws {
			rc.Control(func(fd uintptr) { ops[i] = uring.Op{FD: int32(fd), Buf: f.wbuf} })
		}
	}
	rounds := make([]time.Duration, 0, b.N)
	ends := make([]time.Duration, 0, b.N*conns)
	var busy time.Duration
	overruns := 0 // rounds that started late, the previous one having run over
	next := time.Now()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		next = next.Add(20 * time.Millisecond)
		if d := time.Until(next); d > 0 {
			time.Sleep(d)
		} else {
			// Start now and keep 20 ms from here: catching up would
			// start rounds back to back, on readers still awake.
			overruns++
			next = time.Now()
		}
		start := time.Now()
		for j := 0; ring && j < conns; j += ringEntries {
			batch := ops[j:min(j+ringEntries, conns)]
			if err := r.Run(batch); err != nil {
				b.Fatal(err)
			}
			end := time.Since(start)
			for k, op := range batch {
				if op.Err != 0 {
					if why, gone := readerGone(); gone {
						b.Fatalf("write %d: %s", j+k, why)
					}
					b.Fatalf("write %d: %v", j+k, op.Err)
				}
				if op.N != size {
					b.Fatalf("write %d: the socket took %d of %d bytes: full, its reader fell behind", j+k, op.N, size)
				}
				ends = append(ends, end)
			}
		}
		for j, rc := range raws {
			if ring {
				break
			}
			if err := rc.Control(f.writeFn); err != nil || f.werr != nil {
				if why, gone := readerGone(); gone {
					b.Fatalf("write %d: %s", j, why)
				}
				b.Fatalf("write %d: %v", j, cmp.Or(err, f.werr))
			}
			if f.wn != size {
				b.Fatalf("write %d: the socket took %d of %d bytes: full, its reader fell behind", j, f.wn, size)
			}
			ends = append(ends, time.Since(start))
		}
		rounds = append(rounds, ends[len(ends)-1])
		busy += rounds[i]
	}
	b.StopTimer()
	at := func(d []time.Duration, p float64) float64 {
		slices.Sort(d)
		return float64(d[int(p*float64(len(d)-1))].Nanoseconds())
	}
	b.ReportMetric(float64(busy.Nanoseconds())/float64(b.N), "ns/op")
	b.ReportMetric(float64(busy.Nanoseconds())/float64(b.N*conns)/1000, "us/write")
	b.ReportMetric(at(rounds, 0.5), "p50-ns/round")
	b.ReportMetric(at(rounds, 0.99), "p99-ns/round")
	b.ReportMetric(at(ends, 0.99), "p99-ns/write")
	b.ReportMetric(float64(overruns), "overruns")
}

// floorCPUs returns two processors of this process's set, one for each
// side of BenchmarkLoopbackRound.
func floorCPUs() ([]int, error) {
	var set unix.CPUSet
	if err := unix.SchedGetaffinity(0, &set); err != nil {
		return nil, err
	}
	var cpus []int
	for i := 0; i < 1024 && len(cpus) < 2; i++ {
		if set.IsSet(i) {
			cpus = append(cpus, i)
		}
	}
	if len(cpus) < 2 {
		return nil, fmt.Errorf("needs two processors, has %d", len(cpus))
	}
	return cpus, nil
}

// pinThread locks the calling goroutine to its thread and the thread to
// cpu; unpin gives the thread back all of its processors, then unlocks
// it, for the runtime's pool.
func pinThread(cpu int) (unpin func(), err error) {
	runtime.LockOSThread()
	var old, set unix.CPUSet
	if err := unix.SchedGetaffinity(0, &old); err != nil {
		runtime.UnlockOSThread()
		return nil, err
	}
	set.Set(cpu)
	if err := unix.SchedSetaffinity(0, &set); err != nil {
		runtime.UnlockOSThread()
		return nil, err
	}
	return func() {
		unix.SchedSetaffinity(0, &old)
		runtime.UnlockOSThread()
	}, nil
}

// startFloorReader starts this test binary as the reader side, pinned to
// cpu (a child inherits the processors of the thread that starts it),
// its output going to out.
func startFloorReader(addr string, conns, cpu int, out io.Writer) (*exec.Cmd, error) {
	unpin, err := pinThread(cpu)
	if err != nil {
		return nil, err
	}
	defer unpin()
	cmd := exec.Command(os.Args[0], "-test.run=^TestFloorReader$", "-test.count=1")
	cmd.Env = append(os.Environ(), floorReaderEnv+"="+addr+" "+strconv.Itoa(conns))
	cmd.Stdout, cmd.Stderr = out, out
	return cmd, cmd.Start()
}

// TestFloorReader is BenchmarkLoopbackRound's reader process; without
// its variable it does nothing. It dials the connections and reads each
// on a goroutine of its own until the sender closes them.
func TestFloorReader(t *testing.T) {
	spec := os.Getenv(floorReaderEnv)
	if spec == "" {
		t.Skip("the reader side of BenchmarkLoopbackRound")
	}
	addr, n, _ := strings.Cut(spec, " ")
	conns, err := strconv.Atoi(n)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{}, conns)
	for i := 0; i < conns; i++ {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		go func() {
			io.Copy(io.Discard, c)
			c.Close()
			done <- struct{}{}
		}()
	}
	for i := 0; i < conns; i++ {
		<-done
	}
}

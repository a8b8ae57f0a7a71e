package uring

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"syscall"
	"testing"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// newRing returns a ring, or skips the test where the kernel offers none.
func newRing(t *testing.T, entries uint32) *Ring {
	t.Helper()
	r, err := New(entries)
	if err != nil {
		t.Skipf("no io_uring here: %v", err)
	}
	t.Cleanup(func() { r.Close() })
	return r
}

// pair is a TCP connection over loopback: the socket Send writes (fd, of
// out) and the peer that reads it (in).
type pair struct {
	out, in *net.TCPConn
	fd      int32
}

func pairs(t *testing.T, n int) []pair {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	ps := make([]pair, n)
	for i := range ps {
		out, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		in, err := ln.Accept()
		if err != nil {
			t.Fatal(err)
		}
		ps[i].out, ps[i].in = out.(*net.TCPConn), in.(*net.TCPConn)
		rc, err := ps[i].out.SyscallConn()
		if err != nil {
			t.Fatal(err)
		}
		rc.Control(func(fd uintptr) { ps[i].fd = int32(fd) })
		t.Cleanup(func() { out.Close(); in.Close() })
	}
	return ps
}

// read reads n bytes from c, or fails the test within 10 s.
func read(t *testing.T, c net.Conn, n int) []byte {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	b := make([]byte, n)
	if _, err := io.ReadFull(c, b); err != nil {
		t.Fatal(err)
	}
	return b
}

func TestKernelLayouts(t *testing.T) {
	// The sizes include/uapi/linux/io_uring.h gives them.
	for _, c := range []struct {
		name      string
		got, want uintptr
	}{
		{"io_uring_params", unsafe.Sizeof(params{}), 120},
		{"io_uring_sqe", unsafe.Sizeof(sqe{}), 64},
		{"io_uring_cqe", unsafe.Sizeof(cqe{}), 16},
		{"io_uring_probe", unsafe.Offsetof(probe{}.ops), 16},
		{"io_uring_probe_op", unsafe.Sizeof(probeOp{}), 8},
		// Where the fields that the package writes or reads lie.
		{"io_uring_params.sq_off", unsafe.Offsetof(params{}.sq), 40},
		{"io_uring_params.cq_off", unsafe.Offsetof(params{}.cq), 80},
		{"io_uring_params.features", unsafe.Offsetof(params{}.features), 20},
		{"io_sqring_offsets.array", unsafe.Offsetof(sqOffsets{}.array), 24},
		{"io_cqring_offsets.cqes", unsafe.Offsetof(cqOffsets{}.cqes), 20},
		{"io_uring_sqe.fd", unsafe.Offsetof(sqe{}.fd), 4},
		{"io_uring_sqe.off", unsafe.Offsetof(sqe{}.off), 8},
		{"io_uring_sqe.addr", unsafe.Offsetof(sqe{}.addr), 16},
		{"io_uring_sqe.len", unsafe.Offsetof(sqe{}.len), 24},
		{"io_uring_sqe.msg_flags", unsafe.Offsetof(sqe{}.msgFlags), 28},
		{"io_uring_sqe.user_data", unsafe.Offsetof(sqe{}.userData), 32},
		{"io_uring_cqe.res", unsafe.Offsetof(cqe{}.res), 8},
		{"io_uring_probe_op.flags", unsafe.Offsetof(probeOp{}.flags), 2},
	} {
		if c.got != c.want {
			t.Errorf("%s: %d bytes, want %d", c.name, c.got, c.want)
		}
	}
}

func TestNewWantsAPowerOfTwo(t *testing.T) {
	for _, n := range []uint32{0, 3, 100, 8192} {
		if r, err := New(n); err == nil {
			r.Close()
			t.Errorf("New(%d) took it", n)
		}
	}
}

// Every socket gets its own bytes, in more sends than one call takes.
func TestSendReachesEverySocket(t *testing.T) {
	r := newRing(t, 16)
	ps := pairs(t, 40)
	calls := r.Calls()
	for round := range 3 {
		ops := make([]Op, len(ps))
		for i, p := range ps {
			ops[i] = Op{FD: p.fd, Buf: fmt.Appendf(nil, "round %d socket %02d;", round, i)}
		}
		if err := r.Run(ops); err != nil {
			t.Fatal(err)
		}
		for i, op := range ops {
			if op.Err != 0 || op.N != len(op.Buf) {
				t.Fatalf("round %d send %d: took %d of %d, %v", round, i, op.N, len(op.Buf), op.Err)
			}
			if got := read(t, ps[i].in, len(op.Buf)); !bytes.Equal(got, op.Buf) {
				t.Fatalf("round %d socket %d read %q, want %q", round, i, got, op.Buf)
			}
		}
	}
	// 40 sends are three calls of up to 16: they complete within them,
	// and nothing is left to wait for.
	if got := r.Calls() - calls; got != 3*3 {
		t.Errorf("%d calls for three rounds of 40 sends, want 9", got)
	}
	if err := r.Run(nil); err != nil {
		t.Fatalf("no sends: %v", err)
	}
}

// A send to a full socket takes what fits and never waits; once it is
// full, the next gets EAGAIN; the socket stays usable, and the bytes it
// took arrive in order.
func TestSendToAFullSocket(t *testing.T) {
	r := newRing(t, 4)
	p := pairs(t, 1)[0]
	p.out.SetWriteBuffer(16 << 10)
	p.in.SetReadBuffer(16 << 10)
	big := make([]byte, 4<<20)
	for i := range big {
		big[i] = byte(i * 7)
	}
	ops := []Op{{FD: p.fd, Buf: big}}
	if err := r.Run(ops); err != nil {
		t.Fatal(err)
	}
	took := ops[0].N
	if ops[0].Err != 0 || took <= 0 || took >= len(big) {
		t.Fatalf("first send took %d of %d (%v), want part", took, len(big), ops[0].Err)
	}
	// Nothing reads: the socket has no room left.
	for {
		ops = []Op{{FD: p.fd, Buf: big[took:]}}
		if err := r.Run(ops); err != nil {
			t.Fatal(err)
		}
		if ops[0].Err == syscall.EAGAIN {
			break
		}
		if ops[0].Err != 0 || ops[0].N <= 0 {
			t.Fatalf("send to a socket filling up: %d, %v", ops[0].N, ops[0].Err)
		}
		took += ops[0].N
	}
	if ops[0].N != 0 {
		t.Fatalf("a send with EAGAIN took %d bytes", ops[0].N)
	}
	got := read(t, p.in, took)
	if !bytes.Equal(got, big[:took]) {
		t.Fatal("the bytes read are not those sent")
	}
	ops = []Op{{FD: p.fd, Buf: big[took : took+100]}}
	if err := r.Run(ops); err != nil || ops[0].N != 100 {
		t.Fatalf("send after the peer read: %d, %v, %v", ops[0].N, ops[0].Err, err)
	}
	if got := read(t, p.in, 100); !bytes.Equal(got, big[took:took+100]) {
		t.Fatal("the bytes after the wait are not those sent")
	}
}

// A failed send fails alone: the sends around it in the same call go out.
func TestSendErrorsStayWithTheirSend(t *testing.T) {
	r := newRing(t, 8)
	ps := pairs(t, 3)
	// ps[1] has shut its sending side: a send to it fails with EPIPE.
	if err := ps[1].out.CloseWrite(); err != nil {
		t.Fatal(err)
	}
	ops := []Op{
		{FD: ps[0].fd, Buf: []byte("first")},
		{FD: -1, Buf: []byte("to no socket")},
		{FD: ps[1].fd, Buf: []byte("to a socket shut for writing")},
		{FD: ps[2].fd, Buf: []byte("last")},
	}
	if err := r.Run(ops); err != nil {
		t.Fatal(err)
	}
	want := []syscall.Errno{0, syscall.EBADF, syscall.EPIPE, 0}
	for i, op := range ops {
		if op.Err != want[i] {
			t.Errorf("send %d: error %v, want %v", i, op.Err, want[i])
		}
		if (op.Err == 0) != (op.N == len(op.Buf)) {
			t.Errorf("send %d: took %d of %d with error %v", i, op.N, len(op.Buf), op.Err)
		}
	}
	if got := read(t, ps[0].in, 5); string(got) != "first" {
		t.Errorf("socket 0 read %q", got)
	}
	if got := read(t, ps[2].in, 4); string(got) != "last" {
		t.Errorf("socket 2 read %q", got)
	}
}

// A receive gives what its socket holds, EAGAIN when it holds nothing,
// and nothing without an error at the end of the stream; receives and
// sends go in one call.
func TestRecvGivesWhatEachSocketHas(t *testing.T) {
	r := newRing(t, 8)
	ps := pairs(t, 4)
	if _, err := ps[0].in.Write([]byte("hello")); err != nil {
		t.Fatal(err)
	}
	if err := ps[2].in.Close(); err != nil {
		t.Fatal(err)
	}
	// The data and the end have arrived once a read on the same side
	// would see them: wait for both with a poll.
	for _, fd := range []int32{ps[0].fd, ps[2].fd} {
		pfd := []unix.PollFd{{Fd: fd, Events: unix.POLLIN}}
		if n, err := unix.Poll(pfd, 10000); n != 1 || err != nil {
			t.Fatalf("poll: %d, %v", n, err)
		}
	}
	bufs := [][]byte{make([]byte, 64), make([]byte, 64), make([]byte, 64)}
	ops := []Op{
		{FD: ps[0].fd, Buf: bufs[0], Recv: true},
		{FD: ps[1].fd, Buf: bufs[1], Recv: true},
		{FD: ps[2].fd, Buf: bufs[2], Recv: true},
		{FD: ps[3].fd, Buf: []byte("sent")},
	}
	if err := r.Run(ops); err != nil {
		t.Fatal(err)
	}
	if ops[0].Err != 0 || string(bufs[0][:ops[0].N]) != "hello" {
		t.Errorf("receive with data: %q, %v", bufs[0][:ops[0].N], ops[0].Err)
	}
	if ops[1].Err != syscall.EAGAIN || ops[1].N != 0 {
		t.Errorf("receive with nothing: %d, %v; want EAGAIN", ops[1].N, ops[1].Err)
	}
	if ops[2].Err != 0 || ops[2].N != 0 {
		t.Errorf("receive at the end: %d, %v; want 0 bytes, no error", ops[2].N, ops[2].Err)
	}
	if ops[3].Err != 0 || ops[3].N != 4 {
		t.Errorf("send: %d, %v", ops[3].N, ops[3].Err)
	}
	if got := read(t, ps[3].in, 4); string(got) != "sent" {
		t.Errorf("the send's peer read %q", got)
	}
}

// A closed ring sends nothing and says so.
func TestSendOnAClosedRing(t *testing.T) {
	r := newRing(t, 4)
	p := pairs(t, 1)[0]
	r.Close()
	ops := []Op{{FD: p.fd, Buf: []byte("x")}, {FD: p.fd, Buf: []byte("y")}}
	if err := r.Run(ops); err == nil {
		t.Fatal("a closed ring sent")
	}
	for i, op := range ops {
		if op.Err == 0 || op.N != 0 {
			t.Errorf("send %d on a closed ring: %d, %v", i, op.N, op.Err)
		}
	}
}

// A ring whose descriptor the kernel does not know fails the call and
// says so for every op; it takes back the entries it queued, and the
// kernel holds nothing.
func TestRunWhenTheCallFails(t *testing.T) {
	r := newRing(t, 4)
	p := pairs(t, 1)[0]
	tail := *r.sqTail
	// -1 is no descriptor at all, not one that could be reused by now.
	fd := r.fd
	r.fd = -1
	defer func() { r.fd = fd }() // for Close
	ops := make([]Op, 6)         // more than one call's worth
	for i := range ops {
		ops[i] = Op{FD: p.fd, Buf: []byte("x")}
	}
	if err := r.Run(ops); err == nil {
		t.Fatal("Run on a ring with no descriptor did not fail")
	}
	for i, op := range ops {
		if op.Err != syscall.EBADF || op.N != 0 {
			t.Errorf("op %d: %d, %v; want none taken, EBADF", i, op.N, op.Err)
		}
	}
	if got := *r.sqTail; got != tail {
		t.Errorf("the submission tail moved from %d to %d with nothing submitted", tail, got)
	}
}

// A kernel that takes a call's sends and then fails the wait for their
// completions (never seen) may still read their buffers: Run fails every
// op, and keeps the buffers of those the kernel took from the collector
// for good; not those it never submitted.
func TestRunKeepsTheBuffersAFailedWaitLeaves(t *testing.T) {
	r := newRing(t, 4)
	p := pairs(t, 1)[0]
	submit0, wait0 := submit, waitFor
	defer func() { submit, waitFor = submit0, wait0 }()
	// This kernel takes every entry, completes none, and fails the wait.
	submit = func(_, n int) (int, syscall.Errno) { return n, 0 }
	waitFor = func(_, _ int) syscall.Errno { return syscall.EBADF }

	stranded.Lock()
	before := len(stranded.bufs)
	stranded.Unlock()
	ops := make([]Op, 6) // the first call takes 4; the other 2 are never submitted
	for i := range ops {
		ops[i] = Op{FD: p.fd, Buf: []byte{byte(i)}}
	}
	calls := r.Calls()
	if err := r.Run(ops); !errors.Is(err, syscall.EBADF) {
		t.Fatalf("Run: %v, want the wait's EBADF", err)
	}
	if got := r.Calls() - calls; got != 2 {
		t.Errorf("%d calls counted, want 2: the submit and the failed wait", got)
	}
	for i, op := range ops {
		if op.Err != syscall.EBADF || op.N != 0 {
			t.Errorf("op %d: %d, %v; want none taken, EBADF", i, op.N, op.Err)
		}
	}
	checkStranded(t, before, ops[:4])
}

// checkStranded checks that the buffers the ring kept since before are
// exactly those of ops, in order, and forgets them.
func checkStranded(t *testing.T, before int, ops []Op) {
	t.Helper()
	stranded.Lock()
	kept := append([][]byte(nil), stranded.bufs[before:]...)
	stranded.bufs = stranded.bufs[:before]
	stranded.Unlock()
	if len(kept) != len(ops) {
		t.Fatalf("%d buffers kept, want the %d the kernel took", len(kept), len(ops))
	}
	for i, b := range kept {
		if &b[0] != &ops[i].Buf[0] {
			t.Errorf("kept buffer %d is not op %d's", i, i)
		}
	}
}

// TestRunKeepsOnlyTheBuffersAPartialSubmitTook plays a kernel that takes
// two of four sends, refuses the rest, and then fails the wait for the
// two: the ring keeps the two buffers the kernel may still read, and not
// the two it never took (it kept all four before d51d442).
func TestRunKeepsOnlyTheBuffersAPartialSubmitTook(t *testing.T) {
	r := newRing(t, 4)
	p := pairs(t, 1)[0]
	submit0, wait0 := submit, waitFor
	defer func() { submit, waitFor = submit0, wait0 }()
	calls := 0
	submit = func(_, n int) (int, syscall.Errno) {
		if calls++; calls == 1 {
			return 2, 0
		}
		return -1, syscall.EBADF
	}
	waitFor = func(_, _ int) syscall.Errno { return syscall.EBADF }

	stranded.Lock()
	before := len(stranded.bufs)
	stranded.Unlock()
	ops := make([]Op, 4)
	for i := range ops {
		ops[i] = Op{FD: p.fd, Buf: []byte{byte(i)}}
	}
	if err := r.Run(ops); !errors.Is(err, syscall.EBADF) {
		t.Fatalf("Run: %v, want EBADF", err)
	}
	checkStranded(t, before, ops[:2])
}

package uring

import (
	"errors"
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// The kernel's interface (include/uapi/linux/io_uring.h).
const (
	opSend = 26 // IORING_OP_SEND, Linux 5.6
	opRecv = 27 // IORING_OP_RECV, Linux 5.6

	setupSubmitAll = 1 << 7 // IORING_SETUP_SUBMIT_ALL, Linux 5.18
	featSingleMmap = 1 << 0 // IORING_FEAT_SINGLE_MMAP
	enterGetEvents = 1 << 0 // IORING_ENTER_GETEVENTS
	registerProbe  = 8      // IORING_REGISTER_PROBE
	opSupported    = 1 << 0 // IO_URING_OP_SUPPORTED

	offSQRing = 0
	offCQRing = 0x8000000
	offSQEs   = 0x10000000

	// sendFlags: never wait, whatever the socket's mode (the kernel then
	// completes a send to a full socket with EAGAIN instead of waiting
	// for room), and no SIGPIPE when the peer has gone; recvFlags: never
	// wait either.
	sendFlags = syscall.MSG_DONTWAIT | syscall.MSG_NOSIGNAL
	recvFlags = syscall.MSG_DONTWAIT
)

type sqOffsets struct {
	head, tail, ringMask, ringEntries, flags, dropped, array, resv1 uint32
	userAddr                                                        uint64
}

type cqOffsets struct {
	head, tail, ringMask, ringEntries, overflow, cqes, flags, resv1 uint32
	userAddr                                                        uint64
}

type params struct {
	sqEntries, cqEntries, flags, sqThreadCPU, sqThreadIdle, features, wqFD uint32
	resv                                                                   [3]uint32
	sq                                                                     sqOffsets
	cq                                                                     cqOffsets
}

type sqe struct {
	opcode, flags         uint8
	ioprio                uint16
	fd                    int32
	off, addr             uint64
	len, msgFlags         uint32
	userData              uint64
	bufIndex, personality uint16
	spliceFDIn            int32
	addr3, pad            uint64
}

type cqe struct {
	userData uint64
	res      int32
	flags    uint32
}

type probeOp struct {
	op, resv uint8
	flags    uint16
	resv2    uint32
}

type probe struct {
	lastOp, opsLen uint8
	resv           uint16
	resv2          [3]uint32
	ops            [256]probeOp
}

// A Ring sends and receives through one io_uring. It is not safe for concurrent use:
// one goroutine at a time sends through it.
type Ring struct {
	fd      int
	entries uint32

	sqTail, sqMask *uint32
	sqes           []sqe
	cqHead, cqTail *uint32
	cqMask         uint32
	cqes           []cqe

	rings, sqeMem []byte // the mappings, for Close
	cqMem         []byte // nil when the kernel maps both rings at once

	inflight []Op   // the ops of the call under way
	calls    uint64 // io_uring_enter calls made by Run
}

// New sets up a ring for up to entries sends per system call (a power of
// two up to 4096). It fails where the kernel has no io_uring, or none
// that sends (before Linux 5.6), or where it is disabled (the sysctl
// kernel.io_uring_disabled, or a seccomp profile such as Docker's
// default, which refuses it).
func New(entries uint32) (*Ring, error) {
	if entries == 0 || entries > 4096 || entries&(entries-1) != 0 {
		return nil, fmt.Errorf("uring: %d entries: want a power of two up to 4096", entries)
	}
	p := params{flags: setupSubmitAll}
	fd, err := setup(entries, &p)
	if err == syscall.EINVAL {
		// Before 5.18: without SUBMIT_ALL, a send the kernel refuses
		// before it runs stops the submission there; Send submits the
		// rest with another call.
		p = params{}
		fd, err = setup(entries, &p)
	}
	if err != nil {
		return nil, fmt.Errorf("uring: io_uring_setup: %w", err)
	}
	r := &Ring{fd: fd, entries: entries}
	if err := r.init(&p); err != nil {
		r.Close()
		return nil, err
	}
	return r, nil
}

func setup(entries uint32, p *params) (int, error) {
	fd, _, errno := syscall.Syscall(unix.SYS_IO_URING_SETUP, uintptr(entries), uintptr(unsafe.Pointer(p)), 0)
	if errno != 0 {
		return -1, errno
	}
	return int(fd), nil
}

func (r *Ring) init(p *params) error {
	var pr probe
	if _, _, errno := syscall.Syscall6(unix.SYS_IO_URING_REGISTER, uintptr(r.fd), registerProbe, uintptr(unsafe.Pointer(&pr)), uintptr(len(pr.ops)), 0, 0); errno != 0 {
		return fmt.Errorf("uring: probe: %w", errno)
	}
	for _, op := range []uint8{opSend, opRecv} {
		if pr.lastOp < op || pr.ops[op].flags&opSupported == 0 {
			return errors.New("uring: the kernel's io_uring cannot send or receive (Linux 5.6 or later can)")
		}
	}
	if p.sqEntries < r.entries || p.cqEntries < p.sqEntries {
		return fmt.Errorf("uring: rings of %d and %d entries", p.sqEntries, p.cqEntries)
	}

	sqSize := int(p.sq.array) + int(p.sqEntries)*4
	cqSize := int(p.cq.cqes) + int(p.cqEntries)*int(unsafe.Sizeof(cqe{}))
	single := p.features&featSingleMmap != 0
	size := sqSize
	if single {
		size = max(sqSize, cqSize)
	}
	var err error
	if r.rings, err = mmap(r.fd, offSQRing, size); err != nil {
		return err
	}
	cqMem := r.rings
	if !single {
		if r.cqMem, err = mmap(r.fd, offCQRing, cqSize); err != nil {
			return err
		}
		cqMem = r.cqMem
	}
	if r.sqeMem, err = mmap(r.fd, offSQEs, int(p.sqEntries)*int(unsafe.Sizeof(sqe{}))); err != nil {
		return err
	}

	sq := unsafe.Pointer(&r.rings[0])
	r.sqTail = (*uint32)(unsafe.Add(sq, p.sq.tail))
	r.sqMask = (*uint32)(unsafe.Add(sq, p.sq.ringMask))
	array := unsafe.Slice((*uint32)(unsafe.Add(sq, p.sq.array)), p.sqEntries)
	for i := range array {
		array[i] = uint32(i) // the entry at each slot is the one of the same index
	}
	r.sqes = unsafe.Slice((*sqe)(unsafe.Pointer(&r.sqeMem[0])), p.sqEntries)

	cq := unsafe.Pointer(&cqMem[0])
	r.cqHead = (*uint32)(unsafe.Add(cq, p.cq.head))
	r.cqTail = (*uint32)(unsafe.Add(cq, p.cq.tail))
	r.cqMask = *(*uint32)(unsafe.Add(cq, p.cq.ringMask))
	r.cqes = unsafe.Slice((*cqe)(unsafe.Add(cq, p.cq.cqes)), p.cqEntries)
	return nil
}

func mmap(fd int, off int64, size int) ([]byte, error) {
	b, err := syscall.Mmap(fd, off, size, syscall.PROT_READ|syscall.PROT_WRITE, syscall.MAP_SHARED|syscall.MAP_POPULATE)
	if err != nil {
		return nil, fmt.Errorf("uring: mmap: %w", err)
	}
	return b, nil
}

// Calls returns how many system calls Run has made on r, retries
// included.
func (r *Ring) Calls() uint64 { return r.calls }

// Close releases the ring.
func (r *Ring) Close() error {
	for _, b := range [][]byte{r.sqeMem, r.cqMem, r.rings} {
		if b != nil {
			syscall.Munmap(b)
		}
	}
	r.sqeMem, r.cqMem, r.rings = nil, nil, nil
	if r.fd < 0 {
		return nil
	}
	err := syscall.Close(r.fd)
	r.fd = -1
	return err
}

// Run makes every send and receive in ops, up to the entries given to
// New per system call, and returns once all have completed: the kernel
// holds none of the buffers after it. Each takes what its socket takes
// or has at once, as send(2) and recv(2) with MSG_DONTWAIT do, in the
// order of ops. An error means the ring itself failed (never seen): the
// ops it did not complete have Err set to the error (EAGAIN when it gave
// up submitting after many tries), and the ring should be closed; should
// the kernel have failed to report an op it took, Run keeps that op's
// buffer from the collector, and the caller must not use it again.
func (r *Ring) Run(ops []Op) error {
	if r.rings == nil {
		for i := range ops {
			ops[i].N, ops[i].Err = 0, syscall.EBADF
		}
		return errors.New("uring: the ring is closed")
	}
	// The kernel has only the buffers' addresses: held by the ring, the
	// ops and their buffers are on the heap, where they do not move, even
	// if the caller made them on its stack.
	r.inflight = ops
	defer func() { r.inflight = nil }()
	for len(ops) > 0 {
		n := min(len(ops), int(r.entries))
		if errno := r.send(ops[:n]); errno != 0 {
			for i := range ops {
				if ops[i].N < 0 || i >= n {
					ops[i].N, ops[i].Err = 0, errno
				}
			}
			return fmt.Errorf("uring: io_uring_enter: %w", errno)
		}
		ops = ops[n:]
	}
	return nil
}

// send runs up to r.entries ops: it fills the submission queue, submits
// it and reaps one completion per send. The queues are empty before and
// after, unless it fails.
func (r *Ring) send(ops []Op) syscall.Errno {
	tail := *r.sqTail // only this side writes it
	mask := *r.sqMask
	for i := range ops {
		op := &ops[i]
		op.N, op.Err = -1, 0
		var addr uintptr
		if len(op.Buf) > 0 {
			addr = uintptr(unsafe.Pointer(&op.Buf[0]))
		}
		e := sqe{opcode: opSend, fd: op.FD, addr: uint64(addr), len: uint32(len(op.Buf)), msgFlags: sendFlags, userData: uint64(i)}
		if op.Recv {
			e.opcode, e.msgFlags = opRecv, recvFlags
		}
		r.sqes[(tail+uint32(i))&mask] = e
	}
	// The kernel reads the entries once it sees the new tail.
	atomic.StoreUint32(r.sqTail, tail+uint32(len(ops)))

	// A send that does not wait runs within the call that submits it,
	// and posts its completion before the call returns; the call does
	// not have to wait for anything. It goes to the kernel without the
	// scheduler's bookkeeping for a call that may block (RawSyscall6),
	// as the server's sendto does.
	submitted, completed, stuck := 0, 0, 0
	for submitted < len(ops) {
		n, errno := submit(r.fd, len(ops)-submitted)
		r.calls++
		if errno == 0 {
			submitted += n // on an error n is -1, not a count
		}
		switch {
		case errno == 0 && n > 0:
			stuck = 0
		case errno == syscall.EINTR, errno == syscall.EAGAIN, errno == syscall.EBUSY, errno == 0:
			// Interrupted, or short of memory for now: reap what has
			// completed, and try again, for a while.
			if stuck++; stuck > maxStuck {
				errno = syscall.EAGAIN
				break
			}
			errno = 0
		}
		if errno != 0 {
			// Take back what the kernel did not take, and wait for what
			// it did.
			atomic.StoreUint32(r.sqTail, tail+uint32(submitted))
			if werr := r.wait(ops, submitted-completed-r.reap(ops)); werr != 0 {
				strand(ops[:submitted]) // the kernel takes entries in order
				return werr
			}
			return errno
		}
		completed += r.reap(ops)
	}
	if werr := r.wait(ops, submitted-completed); werr != 0 {
		strand(ops)
		return werr
	}
	return 0
}

// submit and waitFor are the two calls of io_uring_enter that Run makes
// (variables, so that a test can play a kernel that fails a wait; such a
// test must not run in parallel with others that use a ring).
var (
	// submit submits n entries and returns how many the kernel took.
	submit = func(fd, n int) (int, syscall.Errno) {
		taken, _, errno := syscall.RawSyscall6(unix.SYS_IO_URING_ENTER, uintptr(fd), uintptr(n), 0, 0, 0, 0)
		return int(taken), errno
	}
	// waitFor waits for at least n completions.
	waitFor = func(fd, n int) syscall.Errno {
		_, _, errno := syscall.Syscall6(unix.SYS_IO_URING_ENTER, uintptr(fd), 0, uintptr(n), enterGetEvents, 0, 0)
		return errno
	}
)

// stranded holds the buffers of operations that a failed ring may still
// read or write, for as long as the process lives: the collector must
// not hand their memory to anything else.
var stranded struct {
	sync.Mutex
	bufs [][]byte
}

// strand keeps the buffers of the ops that did not complete.
func strand(ops []Op) {
	stranded.Lock()
	defer stranded.Unlock()
	for _, op := range ops {
		if op.N < 0 {
			stranded.bufs = append(stranded.bufs, op.Buf)
		}
	}
}

// maxStuck is how many calls in a row Run makes that submit nothing
// before it gives up.
const maxStuck = 1000

// wait waits for the completions of left sends that the kernel has
// taken, so that none of their buffers stays in its hands. A send to a
// socket leaves the call that submitted it only when the kernel hands it
// to a worker of its own (not seen for these sends), so this is not
// expected to wait.
func (r *Ring) wait(ops []Op, left int) syscall.Errno {
	for left > 0 {
		errno := waitFor(r.fd, left)
		r.calls++
		if errno != 0 && errno != syscall.EINTR && errno != syscall.EAGAIN && errno != syscall.EBUSY {
			// The ring is unusable.
			return errno
		}
		left -= r.reap(ops)
	}
	runtime.KeepAlive(ops)
	return 0
}

// reap takes the completions posted so far and returns how many.
func (r *Ring) reap(ops []Op) int {
	head := *r.cqHead // only this side writes it
	tail := atomic.LoadUint32(r.cqTail)
	for h := head; h != tail; h++ {
		c := r.cqes[h&r.cqMask]
		op := &ops[c.userData]
		if c.res >= 0 {
			op.N = int(c.res)
		} else {
			op.N, op.Err = 0, syscall.Errno(-c.res)
		}
	}
	atomic.StoreUint32(r.cqHead, tail)
	return int(tail - head)
}

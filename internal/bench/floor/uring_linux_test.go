package floor

import (
	"fmt"
	"runtime"
	"sync/atomic"
	"syscall"
	"unsafe"
)

// A minimal io_uring, enough to send one buffer to many sockets in one
// system call: the relay's batched writers (BenchmarkRelayIOURing). It
// measures what batching sends across sockets would save a fan-out
// (target 4 of docs/benchmarks.md). No io_uring library is served to this
// project, so the few structures needed are written here from
// <linux/io_uring.h>; this is a measurement, not a part of Parley.

const (
	// The system calls' numbers are the same on every architecture Go
	// runs Linux on.
	sysIOURingSetup = 425
	sysIOURingEnter = 426

	iouringOffSQRing = 0
	iouringOffCQRing = 0x8000000
	iouringOffSQEs   = 0x10000000

	iouringSetupSubmitAll    = 1 << 7
	iouringSetupCoopTaskrun  = 1 << 8
	iouringSetupSingleIssuer = 1 << 12
	iouringSetupDeferTaskrun = 1 << 13

	iouringFeatSingleMmap = 1 << 0
	iouringEnterGetEvents = 1 << 0
	iouringOpSend         = 26
	msgNoSignal           = 0x4000
)

type sqringOffsets struct {
	head, tail, ringMask, ringEntries, flags, dropped, array, resv1 uint32
	userAddr                                                        uint64
}

type cqringOffsets struct {
	head, tail, ringMask, ringEntries, overflow, cqes, flags, resv1 uint32
	userAddr                                                        uint64
}

type iouringParams struct {
	sqEntries, cqEntries, flags, sqThreadCPU, sqThreadIdle, features, wqFD uint32
	resv                                                                   [3]uint32
	sqOff                                                                  sqringOffsets
	cqOff                                                                  cqringOffsets
}

type iouringSQE struct {
	opcode      uint8
	flags       uint8
	ioprio      uint16
	fd          int32
	off         uint64
	addr        uint64
	len         uint32
	msgFlags    uint32
	userData    uint64
	bufIndex    uint16
	personality uint16
	spliceFDIn  int32
	addr3       uint64
	pad         uint64
}

type iouringCQE struct {
	userData uint64
	res      int32
	flags    uint32
}

// ring is one io_uring, used by one goroutine locked to its thread (the
// ring is set up for a single issuer).
type ring struct {
	fd             int
	sqHead, sqTail *uint32
	sqMask         uint32
	sqArray        []uint32
	sqes           []iouringSQE
	cqHead, cqTail *uint32
	cqMask         uint32
	cqes           []iouringCQE
	mems           [][]byte
	entries        uint32
}

func newRing(entries uint32) (*ring, error) {
	var p iouringParams
	p.flags = iouringSetupSubmitAll | iouringSetupCoopTaskrun | iouringSetupSingleIssuer | iouringSetupDeferTaskrun
	fd, _, errno := syscall.Syscall(sysIOURingSetup, uintptr(entries), uintptr(unsafe.Pointer(&p)), 0)
	if errno != 0 {
		return nil, fmt.Errorf("io_uring_setup: %w", errno)
	}
	r := &ring{fd: int(fd), entries: p.sqEntries}
	mmap := func(off int64, size int) ([]byte, error) {
		b, err := syscall.Mmap(r.fd, off, size, syscall.PROT_READ|syscall.PROT_WRITE, syscall.MAP_SHARED|syscall.MAP_POPULATE)
		if err == nil {
			r.mems = append(r.mems, b)
		}
		return b, err
	}
	sqSize := int(p.sqOff.array + p.sqEntries*4)
	cqSize := int(p.cqOff.cqes + p.cqEntries*uint32(unsafe.Sizeof(iouringCQE{})))
	if p.features&iouringFeatSingleMmap != 0 {
		sqSize = max(sqSize, cqSize)
	}
	sq, err := mmap(iouringOffSQRing, sqSize)
	if err != nil {
		r.close()
		return nil, fmt.Errorf("mmap SQ ring: %w", err)
	}
	cq := sq
	if p.features&iouringFeatSingleMmap == 0 {
		if cq, err = mmap(iouringOffCQRing, cqSize); err != nil {
			r.close()
			return nil, fmt.Errorf("mmap CQ ring: %w", err)
		}
	}
	sqeMem, err := mmap(iouringOffSQEs, int(p.sqEntries)*int(unsafe.Sizeof(iouringSQE{})))
	if err != nil {
		r.close()
		return nil, fmt.Errorf("mmap SQEs: %w", err)
	}
	u32 := func(b []byte, off uint32) *uint32 { return (*uint32)(unsafe.Pointer(&b[off])) }
	r.sqHead, r.sqTail, r.sqMask = u32(sq, p.sqOff.head), u32(sq, p.sqOff.tail), *u32(sq, p.sqOff.ringMask)
	r.sqArray = unsafe.Slice(u32(sq, p.sqOff.array), p.sqEntries)
	r.sqes = unsafe.Slice((*iouringSQE)(unsafe.Pointer(&sqeMem[0])), p.sqEntries)
	r.cqHead, r.cqTail, r.cqMask = u32(cq, p.cqOff.head), u32(cq, p.cqOff.tail), *u32(cq, p.cqOff.ringMask)
	r.cqes = unsafe.Slice((*iouringCQE)(unsafe.Pointer(&cq[p.cqOff.cqes])), p.cqEntries)
	return r, nil
}

func (r *ring) close() {
	for _, b := range r.mems {
		_ = syscall.Munmap(b)
	}
	_ = syscall.Close(r.fd)
}

// sendAll sends buf to every one of fds, up to the ring's size at a time,
// and waits for every send to complete. A send that writes less than buf
// is an error, reported once every send has completed: at the relay's
// loads no socket buffer fills.
func (r *ring) sendAll(fds []int32, buf []byte) error {
	var first error
	for len(fds) > 0 {
		n := min(uint32(len(fds)), r.entries)
		tail := *r.sqTail
		for i := range n {
			idx := (tail + i) & r.sqMask
			r.sqes[idx] = iouringSQE{
				opcode:   iouringOpSend,
				fd:       fds[i],
				addr:     uint64(uintptr(unsafe.Pointer(&buf[0]))),
				len:      uint32(len(buf)),
				msgFlags: msgNoSignal,
				userData: uint64(i),
			}
			r.sqArray[idx] = idx
		}
		atomic.StoreUint32(r.sqTail, tail+n)
		submit, done := n, uint32(0)
		for done < n {
			// Submit the sends (once) and wait for all of them.
			_, _, errno := syscall.Syscall6(sysIOURingEnter, uintptr(r.fd), uintptr(submit), uintptr(n-done), iouringEnterGetEvents, 0, 0)
			switch errno {
			case 0:
				submit = 0
			case syscall.EINTR:
			default:
				return fmt.Errorf("io_uring_enter: %w", errno)
			}
			head, ctail := *r.cqHead, atomic.LoadUint32(r.cqTail)
			for ; head != ctail; head++ {
				c := r.cqes[head&r.cqMask]
				switch {
				case c.res == int32(len(buf)) || first != nil:
				case c.res < 0:
					first = fmt.Errorf("send to fd %d: %w", fds[c.userData], syscall.Errno(-c.res))
				default:
					first = fmt.Errorf("send to fd %d: %d of %d bytes", fds[c.userData], c.res, len(buf))
				}
				done++
			}
			atomic.StoreUint32(r.cqHead, head)
		}
		runtime.KeepAlive(buf)
		fds = fds[n:]
	}
	return first
}

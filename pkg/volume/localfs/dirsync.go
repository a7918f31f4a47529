package localfs

import (
	"sync"

	"golang.org/x/sys/unix"
)

// syncer coalesces fsyncs of one directory. A caller that changed the
// directory needs an fsync that started after its change; if one is already
// running it may have missed the change, so the caller waits for the next
// one, which then serves every caller that queued up meanwhile. Under load
// this turns N concurrent creates in a directory into about two fsyncs.
type syncer struct {
	mu      sync.Mutex
	cond    sync.Cond
	running bool
	started uint64 // generation of the last fsync started
	done    uint64 // generation of the last fsync finished
	errGen  uint64 // generation of the last fsync that failed
	err     error  // its error
}

// sync makes every change to fd's directory made before the call durable.
func (s *syncer) sync(fd int) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cond.L == nil {
		s.cond.L = &s.mu
	}
	target := s.started + 1
	for s.done < target {
		if s.running {
			s.cond.Wait()
			continue
		}
		s.running = true
		s.started++
		gen := s.started
		s.mu.Unlock()
		err := fsync(fd)
		s.mu.Lock()
		s.running = false
		s.done = gen
		if err != nil {
			s.errGen, s.err = gen, err
		}
		s.cond.Broadcast()
	}
	// Any failure from our target on may have lost our change: report it
	// rather than trust a later success.
	if s.errGen >= target {
		return s.err
	}
	return nil
}

func fsync(fd int) error {
	for {
		err := unix.Fsync(fd)
		if err != unix.EINTR {
			return err
		}
	}
}

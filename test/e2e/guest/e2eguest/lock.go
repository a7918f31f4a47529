package main

import (
	"errors"
	"fmt"
	"os"
	"time"

	"golang.org/x/sys/unix"
)

// lockMain takes POSIX (fcntl) byte-range locks on whole files, which an
// NFSv4 mount turns into LOCK, LOCKT and LOCKU:
//
//	lock try FILE                 take a write lock without waiting: prints "locked" or "denied"
//	lock test FILE                F_GETLK: prints "free" or "held"
//	lock wait FILE                take a write lock, waiting: prints how long it waited
//	lock hold FILE SIGNAL UNTIL   take a write lock, ctl signal SIGNAL, ctl wait UNTIL, unlock
func lockMain(args []string) error {
	if len(args) < 2 {
		return errors.New("usage: lock try|test|wait|hold FILE [SIGNAL UNTIL]")
	}
	f, err := os.OpenFile(args[1], os.O_RDWR, 0)
	if err != nil {
		return err
	}
	defer f.Close()
	whole := unix.Flock_t{Type: unix.F_WRLCK, Whence: 0, Start: 0, Len: 0}
	switch args[0] {
	case "try":
		err := unix.FcntlFlock(f.Fd(), unix.F_SETLK, &whole)
		switch {
		case err == nil:
			fmt.Println("locked")
		case errors.Is(err, unix.EAGAIN), errors.Is(err, unix.EACCES):
			fmt.Println("denied")
		default:
			return fmt.Errorf("F_SETLK: %w", err)
		}
		return nil
	case "test":
		lk := whole
		if err := unix.FcntlFlock(f.Fd(), unix.F_GETLK, &lk); err != nil {
			return fmt.Errorf("F_GETLK: %w", err)
		}
		if lk.Type == unix.F_UNLCK {
			fmt.Println("free")
		} else {
			fmt.Println("held")
		}
		return nil
	case "wait":
		t0 := time.Now()
		if err := unix.FcntlFlock(f.Fd(), unix.F_SETLKW, &whole); err != nil {
			return fmt.Errorf("F_SETLKW: %w", err)
		}
		fmt.Printf("%.2fs\n", time.Since(t0).Seconds())
		return nil
	case "hold":
		if len(args) < 4 {
			return errors.New("usage: lock hold FILE SIGNAL UNTIL")
		}
		if err := unix.FcntlFlock(f.Fd(), unix.F_SETLKW, &whole); err != nil {
			return fmt.Errorf("F_SETLKW: %w", err)
		}
		if err := ctlMain([]string{"signal", args[2]}); err != nil {
			return err
		}
		if err := ctlMain([]string{"wait", args[3], "240"}); err != nil {
			return err
		}
		unlock := whole
		unlock.Type = unix.F_UNLCK
		return unix.FcntlFlock(f.Fd(), unix.F_SETLK, &unlock)
	}
	return fmt.Errorf("unknown lock command %q", args[0])
}

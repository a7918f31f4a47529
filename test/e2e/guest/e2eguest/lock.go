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
//	lock keep FILE NAME           hold a file open and locked across a server restart (see keepLock)
func lockMain(args []string) error {
	if len(args) < 2 {
		return errors.New("usage: lock try|test|wait|hold|keep|sleep FILE [SIGNAL UNTIL | NAME | NOTE]")
	}
	if args[0] == "keep" {
		if len(args) < 3 {
			return errors.New("usage: lock keep FILE NAME")
		}
		return keepLock(args[1], args[2])
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
	case "sleep":
		// For pods, which have no control channel: hold the lock until
		// killed; NOTE, if given, says "locked" once it is held.
		if err := unix.FcntlFlock(f.Fd(), unix.F_SETLKW, &whole); err != nil {
			return fmt.Errorf("F_SETLKW: %w", err)
		}
		if len(args) > 2 {
			if err := os.WriteFile(args[2], []byte("locked\n"), 0o644); err != nil {
				return err
			}
		}
		for { // not select{}: with nothing else to run, Go calls that a deadlock and exits
			time.Sleep(time.Hour)
		}
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

// keepMiB is what keepLock writes before and after the restart.
const keepMiB = 1 << 20

// keepLock creates file with 1 MiB, fsyncs it, takes a write lock on it
// and signals NAME-ready; then, holding the file open and locked, waits
// for the host's "restarted", writes and fsyncs a second MiB through the
// same descriptor (which needs the client to have reclaimed its open and
// lock), prints how long that took and signals NAME-wrote; at
// NAME-release it unlocks and closes.
func keepLock(path, name string) error {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return err
	}
	defer f.Close()
	block := make([]byte, keepMiB)
	for i := range block {
		block[i] = byte(i*7) ^ name[0]
	}
	if _, err := f.WriteAt(block, 0); err != nil {
		return err
	}
	if err := f.Sync(); err != nil {
		return err
	}
	whole := unix.Flock_t{Type: unix.F_WRLCK, Whence: 0, Start: 0, Len: 0}
	if err := unix.FcntlFlock(f.Fd(), unix.F_SETLK, &whole); err != nil {
		return fmt.Errorf("F_SETLK: %w", err)
	}
	if err := ctlMain([]string{"signal", name + "-ready"}); err != nil {
		return err
	}
	if err := ctlMain([]string{"wait", "restarted", "240"}); err != nil {
		return err
	}
	t0 := time.Now()
	for i := range block {
		block[i] = ^block[i]
	}
	if _, err := f.WriteAt(block, keepMiB); err != nil {
		return fmt.Errorf("write after the restart: %w", err)
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("fsync after the restart: %w", err)
	}
	fmt.Printf("%.2fs\n", time.Since(t0).Seconds())
	if err := ctlMain([]string{"signal", name + "-wrote"}); err != nil {
		return err
	}
	if err := ctlMain([]string{"wait", name + "-release", "240"}); err != nil {
		return err
	}
	unlock := whole
	unlock.Type = unix.F_UNLCK
	if err := unix.FcntlFlock(f.Fd(), unix.F_SETLK, &unlock); err != nil {
		return fmt.Errorf("unlock after the restart: %w", err)
	}
	return f.Close()
}

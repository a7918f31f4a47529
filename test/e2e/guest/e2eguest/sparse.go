package main

import (
	"errors"
	"fmt"
	"os"
	"strconv"

	"golang.org/x/sys/unix"
)

// sparseMain punches holes and finds data and holes, which busybox's
// fallocate and cp cannot (over NFSv4.2: DEALLOCATE and SEEK):
//
//	e2eguest sparse punch FILE OFF LEN   fallocate PUNCH_HOLE|KEEP_SIZE
//	e2eguest sparse seek FILE OFF data|hole   prints the offset, or ENXIO
func sparseMain(args []string) error {
	if len(args) != 4 {
		return errors.New("usage: sparse punch FILE OFF LEN | sparse seek FILE OFF data|hole")
	}
	off, err := strconv.ParseInt(args[2], 10, 64)
	if err != nil {
		return fmt.Errorf("offset: %w", err)
	}
	f, err := os.OpenFile(args[1], os.O_RDWR, 0)
	if err != nil {
		return err
	}
	defer f.Close()
	switch args[0] {
	case "punch":
		n, err := strconv.ParseInt(args[3], 10, 64)
		if err != nil {
			return fmt.Errorf("length: %w", err)
		}
		return unix.Fallocate(int(f.Fd()), unix.FALLOC_FL_PUNCH_HOLE|unix.FALLOC_FL_KEEP_SIZE, off, n)
	case "seek":
		whence := unix.SEEK_DATA
		if args[3] == "hole" {
			whence = unix.SEEK_HOLE
		}
		pos, err := unix.Seek(int(f.Fd()), off, whence)
		if errors.Is(err, unix.ENXIO) {
			fmt.Println("ENXIO")
			return nil
		}
		if err != nil {
			return err
		}
		fmt.Println(pos)
		return nil
	}
	return fmt.Errorf("unknown sparse command %q", args[0])
}

package main

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"time"
)

// streamMain writes or verifies a deterministic pseudo-random file:
//
//	stream write [--mb N --rate MiB/s --signal-at MiB --signal NAME] FILE
//	stream verify [--mb N] FILE
//
// write paces itself so that a host-side event (a server crash) lands in the
// middle of the stream, fsyncs at the end and prints the SHA-256 it wrote.
func streamMain(args []string) error {
	if len(args) < 1 {
		return errors.New("usage: stream write|verify FILE [flags]")
	}
	fs := flag.NewFlagSet("stream", flag.ExitOnError)
	mb := fs.Int("mb", 64, "file size in MiB")
	chunkKB := fs.Int("chunk-kb", 256, "write size in KiB")
	rate := fs.Float64("rate", 0, "pace writes to this many MiB/s (0: as fast as possible)")
	signalAt := fs.Int("signal-at", -1, "after this many MiB, signal the host (ctl)")
	signal := fs.String("signal", "", "ctl event name for --signal-at")
	seed := fs.Uint64("seed", 7, "data seed")
	fs.Parse(args[1:])
	if fs.NArg() != 1 {
		return errors.New("need exactly one FILE")
	}
	path := fs.Arg(0)
	gen := newGen(*seed)
	chunk := make([]byte, *chunkKB<<10)
	total := int64(*mb) << 20
	sum := sha256.New()
	t0 := time.Now()
	switch args[0] {
	case "write":
		f, err := os.OpenFile(path, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o644)
		if err != nil {
			return fmt.Errorf("create: %w", err)
		}
		signalled := false
		for off := int64(0); off < total; off += int64(len(chunk)) {
			gen.fill(chunk)
			sum.Write(chunk)
			if _, err := f.Write(chunk); err != nil {
				return fmt.Errorf("write at %d: %w", off, err)
			}
			done := off + int64(len(chunk))
			if !signalled && *signalAt >= 0 && done >= int64(*signalAt)<<20 {
				signalled = true
				fmt.Printf("stream: %d MiB written at %.2fs, signalling %s\n", done>>20, time.Since(t0).Seconds(), *signal)
				if err := ctlMain([]string{"signal", *signal, fmt.Sprint(done)}); err != nil {
					return err
				}
			}
			if *rate > 0 {
				ahead := time.Duration(float64(done)/(*rate*(1<<20))*float64(time.Second)) - time.Since(t0)
				if ahead > 0 {
					time.Sleep(ahead)
				}
			}
		}
		tw := time.Now()
		if err := f.Sync(); err != nil {
			return fmt.Errorf("fsync: %w", err)
		}
		if err := f.Close(); err != nil {
			return fmt.Errorf("close: %w", err)
		}
		fmt.Printf("stream: wrote %d MiB in %.2fs (fsync+close %.2fs)\n", *mb, time.Since(t0).Seconds(), time.Since(tw).Seconds())
		fmt.Printf("E2E-SHA256 %s %x\n", path, sum.Sum(nil))
	case "verify":
		f, err := os.Open(path)
		if err != nil {
			return fmt.Errorf("open: %w", err)
		}
		defer f.Close()
		got := make([]byte, len(chunk))
		for off := int64(0); off < total; off += int64(len(chunk)) {
			gen.fill(chunk)
			sum.Write(chunk)
			if _, err := io.ReadFull(f, got); err != nil {
				return fmt.Errorf("read at %d: %w", off, err)
			}
			if !bytes.Equal(got, chunk) {
				i := 0
				for got[i] == chunk[i] {
					i++
				}
				return fmt.Errorf("content differs at offset %d", off+int64(i))
			}
		}
		if n, _ := f.Read(got[:1]); n != 0 {
			return errors.New("file longer than expected")
		}
		fmt.Printf("stream: verified %d MiB in %.2fs\n", *mb, time.Since(t0).Seconds())
		fmt.Printf("E2E-SHA256 %s %x\n", path, sum.Sum(nil))
	default:
		return fmt.Errorf("unknown stream command %q", args[0])
	}
	return nil
}

type gen struct{ c *rand.ChaCha8 }

func newGen(seed uint64) *gen {
	var s [32]byte
	binary.LittleEndian.PutUint64(s[:], seed)
	return &gen{rand.NewChaCha8(s)}
}

func (g *gen) fill(b []byte) { g.c.Read(b) }

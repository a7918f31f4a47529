package main

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"hash/crc32"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// commitMain runs one side of a Lucene-style commit protocol on a shared
// directory (two NFS clients on different guests):
//
//	commit writer [--gens N --per-gen K] DIR
//	commit reader DIR
//
// The writer appends CRC'd records to data.log, fsyncs, then publishes a
// commit point by writing commit.tmp, fsyncing it and renaming it over
// "commit". The reader keeps reopening "commit" and data.log and checks,
// relying only on close-to-open consistency, that every commit it sees is
// whole and that every record it names is present and intact. The two sides
// synchronize through files in DIR (reader.ready, reader.done) with bounded
// waits.
func commitMain(args []string) error {
	if len(args) < 1 {
		return errors.New("usage: commit writer|reader DIR")
	}
	fs := flag.NewFlagSet("commit", flag.ExitOnError)
	gens := fs.Int("gens", 100, "commit generations (writer)")
	perGen := fs.Int("per-gen", 5, "records per generation (writer)")
	pause := fs.Duration("pause", 20*time.Millisecond, "pause between commits (writer)")
	timeout := fs.Duration("timeout", 240*time.Second, "overall deadline")
	fs.Parse(args[1:])
	if fs.NArg() != 1 {
		return errors.New("need DIR")
	}
	dir := fs.Arg(0)
	deadline := time.Now().Add(*timeout)
	switch args[0] {
	case "writer":
		return commitWriter(dir, *gens, *perGen, *pause, deadline)
	case "reader":
		return commitReader(dir, deadline)
	}
	return fmt.Errorf("unknown commit command %q", args[0])
}

func waitFile(path string, deadline time.Time) ([]byte, error) {
	for {
		b, err := os.ReadFile(path)
		if err == nil {
			return b, nil
		}
		if !errors.Is(err, os.ErrNotExist) {
			return nil, err
		}
		// A cached negative lookup can hide a new file for up to the
		// directory attribute timeout; listing the directory revalidates
		// it, as polling applications do.
		if ents, err := os.ReadDir(filepath.Dir(path)); err == nil {
			for _, e := range ents {
				if e.Name() == filepath.Base(path) {
					if b, err := os.ReadFile(path); err == nil {
						return b, nil
					}
				}
			}
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("timed out waiting for %s", path)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// record: magic(4) seq(8) plen(4) payload crc32(4) over everything before it.
const recMagic = 0x52454331 // "REC1"

func appendRecord(b []byte, seq uint64) []byte {
	r := rand.New(rand.NewPCG(seq, 99))
	plen := 16 + r.IntN(500)
	start := len(b)
	b = binary.BigEndian.AppendUint32(b, recMagic)
	b = binary.BigEndian.AppendUint64(b, seq)
	b = binary.BigEndian.AppendUint32(b, uint32(plen))
	for i := 0; i < plen; i++ {
		b = append(b, byte(r.Uint32()))
	}
	return binary.BigEndian.AppendUint32(b, crc32.ChecksumIEEE(b[start:]))
}

// checkRecords verifies that data holds records 1..n back to back, intact.
func checkRecords(data []byte, n uint64) error {
	var want []byte
	for seq := uint64(1); seq <= n; seq++ {
		want = appendRecord(want[:0], seq)
		if len(data) < len(want) {
			return fmt.Errorf("record %d truncated", seq)
		}
		if !bytes.Equal(data[:len(want)], want) {
			return fmt.Errorf("record %d corrupt", seq)
		}
		data = data[len(want):]
	}
	if len(data) != 0 {
		return fmt.Errorf("%d trailing bytes after record %d", len(data), n)
	}
	return nil
}

type commitPoint struct {
	gen, records, length uint64
	sum                  string
	final                bool
}

func (c commitPoint) encode() []byte {
	body := fmt.Sprintf("gen=%d records=%d length=%d sha256=%s final=%v", c.gen, c.records, c.length, c.sum, c.final)
	return []byte(fmt.Sprintf("%s\nEND %08x\n", body, crc32.ChecksumIEEE([]byte(body))))
}

func parseCommit(b []byte) (commitPoint, error) {
	var c commitPoint
	body, trailer, ok := strings.Cut(string(b), "\nEND ")
	if !ok || len(trailer) != 9 || trailer[8] != '\n' {
		return c, fmt.Errorf("torn commit (%d bytes): %q", len(b), b)
	}
	if fmt.Sprintf("%08x", crc32.ChecksumIEEE([]byte(body))) != trailer[:8] {
		return c, fmt.Errorf("torn commit (bad crc): %q", b)
	}
	for _, kv := range strings.Fields(body) {
		k, v, _ := strings.Cut(kv, "=")
		var err error
		switch k {
		case "gen":
			c.gen, err = strconv.ParseUint(v, 10, 64)
		case "records":
			c.records, err = strconv.ParseUint(v, 10, 64)
		case "length":
			c.length, err = strconv.ParseUint(v, 10, 64)
		case "sha256":
			c.sum = v
		case "final":
			c.final = v == "true"
		}
		if err != nil {
			return c, fmt.Errorf("commit field %s: %w", k, err)
		}
	}
	return c, nil
}

func writeSynced(path string, data []byte) error {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o644)
	if err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

func commitWriter(dir string, gens, perGen int, pause time.Duration, deadline time.Time) error {
	if _, err := waitFile(filepath.Join(dir, "reader.ready"), deadline); err != nil {
		return err
	}
	fmt.Println("writer: reader is ready")
	log, err := os.OpenFile(filepath.Join(dir, "data.log"), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		return err
	}
	defer log.Close()
	var all []byte
	seq := uint64(0)
	t0 := time.Now()
	for g := 1; g <= gens; g++ {
		start := len(all)
		for i := 0; i < perGen; i++ {
			seq++
			all = appendRecord(all, seq)
		}
		if _, err := log.Write(all[start:]); err != nil {
			return fmt.Errorf("append gen %d: %w", g, err)
		}
		if err := log.Sync(); err != nil {
			return fmt.Errorf("fsync data.log gen %d: %w", g, err)
		}
		sum := sha256.Sum256(all)
		c := commitPoint{gen: uint64(g), records: seq, length: uint64(len(all)), sum: hex.EncodeToString(sum[:]), final: g == gens}
		tmp := filepath.Join(dir, "commit.tmp")
		if err := writeSynced(tmp, c.encode()); err != nil {
			return fmt.Errorf("commit.tmp gen %d: %w", g, err)
		}
		if err := os.Rename(tmp, filepath.Join(dir, "commit")); err != nil {
			return fmt.Errorf("rename commit gen %d: %w", g, err)
		}
		time.Sleep(pause)
	}
	fmt.Printf("writer: %d commits, %d records, %d bytes in %.2fs\n", gens, seq, len(all), time.Since(t0).Seconds())
	done, err := waitFile(filepath.Join(dir, "reader.done"), deadline)
	if err != nil {
		return err
	}
	fmt.Printf("writer: reader reports: %s\n", bytes.TrimSpace(done))
	return nil
}

func commitReader(dir string, deadline time.Time) error {
	if err := writeSynced(filepath.Join(dir, "reader.ready"), []byte("ready\n")); err != nil {
		return err
	}
	var last commitPoint
	seen, reads, stale, absent := 0, 0, 0, 0
	t0 := time.Now()
	for !last.final {
		if time.Now().After(deadline) {
			return fmt.Errorf("timed out after seeing gen %d (%d distinct commits)", last.gen, seen)
		}
		b, err := os.ReadFile(filepath.Join(dir, "commit"))
		switch {
		case errors.Is(err, os.ErrNotExist) && last.gen == 0:
			// No commit yet. Listing the directory revalidates it, so a
			// cached negative lookup does not hide the first commit.
			absent++
			os.ReadDir(dir)
			time.Sleep(20 * time.Millisecond)
			continue
		case errors.Is(err, syscall.ESTALE):
			// The name moved to a new file between the client's lookup
			// and its read: NFS allows this; reopen.
			stale++
			continue
		case err != nil:
			return fmt.Errorf("read commit after gen %d: %w", last.gen, err)
		}
		reads++
		c, err := parseCommit(b)
		if err != nil {
			return err
		}
		if c.gen < last.gen {
			return fmt.Errorf("commit went backwards: gen %d after gen %d", c.gen, last.gen)
		}
		if c.gen == last.gen {
			continue
		}
		data, err := os.ReadFile(filepath.Join(dir, "data.log"))
		if err != nil {
			return fmt.Errorf("read data.log for gen %d: %w", c.gen, err)
		}
		if uint64(len(data)) < c.length {
			return fmt.Errorf("gen %d: data.log has %d bytes, commit says %d (committed data not visible after open)", c.gen, len(data), c.length)
		}
		data = data[:c.length]
		if sum := sha256.Sum256(data); hex.EncodeToString(sum[:]) != c.sum {
			return fmt.Errorf("gen %d: data.log prefix checksum mismatch: %v", c.gen, checkRecords(data, c.records))
		}
		if err := checkRecords(data, c.records); err != nil {
			return fmt.Errorf("gen %d: %w", c.gen, err)
		}
		last = c
		seen++
	}
	msg := fmt.Sprintf("reader: final gen %d with %d records; %d distinct commits seen in %d reads, %d ESTALE reopens, %.2fs",
		last.gen, last.records, seen, reads, stale, time.Since(t0).Seconds())
	fmt.Println(msg)
	if err := writeSynced(filepath.Join(dir, "reader.done"), []byte(msg+"\n")); err != nil {
		return err
	}
	if seen < 3 {
		return fmt.Errorf("reader observed only %d commits: the two clients did not overlap", seen)
	}
	return nil
}

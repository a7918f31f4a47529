package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"time"
)

// cmdDisk measures the local disk the exports live on: dd with
// conv=fdatasync for sequential writes, dd from the (cached) file for
// sequential reads, and fio 4 KiB random direct I/O at queue depth 16.
func cmdDisk(args []string) error {
	fs := flag.NewFlagSet("disk", flag.ExitOnError)
	name := fs.String("name", "disk", "name in the report")
	run := fs.Int("run", 1, "run number")
	dir := fs.String("dir", "", "directory on the disk to measure")
	sizeMiB := fs.Int("size", 1024, "file size, MiB")
	secs := fs.Int("fio-seconds", 5, "seconds per fio job")
	out := fs.String("out", "-", "append the JSON result to this file")
	fs.Parse(args)
	if *dir == "" {
		return fmt.Errorf("disk: -dir is required")
	}
	res := &result{Server: *name, Run: *run, Metrics: map[string]float64{}, PhaseS: map[string]float64{}}
	file := filepath.Join(*dir, "disk.bench")
	defer os.Remove(file)

	t0 := time.Now()
	err := exec.Command("dd", "if=/dev/zero", "of="+file, "bs=1M", "count="+strconv.Itoa(*sizeMiB), "conv=fdatasync", "status=none").Run()
	el := time.Since(t0)
	res.PhaseS["seq_write"] = el.Seconds()
	if err != nil {
		res.fail("seq_write", fmt.Errorf("dd write: %w", err))
	} else {
		res.Metrics["seq_write_MiBps"] = float64(*sizeMiB) / el.Seconds()
	}
	t0 = time.Now()
	err = exec.Command("dd", "if="+file, "of=/dev/null", "bs=1M", "status=none").Run()
	el = time.Since(t0)
	res.PhaseS["seq_read"] = el.Seconds()
	if err != nil {
		res.fail("seq_read", fmt.Errorf("dd read: %w", err))
	} else {
		res.Metrics["seq_read_MiBps"] = float64(*sizeMiB) / el.Seconds()
	}
	res.Notes = append(res.Notes, "seq read is dd from the page cache; seq write is dd conv=fdatasync")

	for _, j := range []struct{ rw, metric, phase string }{
		{"randread", "rand_read_kIOPS", "rand_read"},
		{"randwrite", "rand_write_kIOPS", "rand_write"},
	} {
		t0 := time.Now()
		iops, err := fio(file, j.rw, *sizeMiB, *secs)
		res.PhaseS[j.phase] = time.Since(t0).Seconds()
		if err != nil {
			res.fail(j.phase, err)
			continue
		}
		res.Metrics[j.metric] = iops / 1000
	}
	return appendJSON(*out, res)
}

func fio(file, rw string, sizeMiB, secs int) (float64, error) {
	cmd := exec.Command("fio", "--name=bench", "--filename="+file, "--rw="+rw, "--bs=4k",
		"--direct=1", "--ioengine=libaio", "--iodepth=16", "--size="+strconv.Itoa(sizeMiB)+"M",
		"--runtime="+strconv.Itoa(secs), "--time_based", "--output-format=json")
	b, err := cmd.Output()
	if err != nil {
		return 0, fmt.Errorf("fio %s: %w", rw, err)
	}
	var r struct {
		Jobs []struct {
			Read  struct{ IOPS float64 } `json:"read"`
			Write struct{ IOPS float64 } `json:"write"`
		} `json:"jobs"`
	}
	if err := json.Unmarshal(b, &r); err != nil || len(r.Jobs) == 0 {
		return 0, fmt.Errorf("fio %s: unreadable output: %v", rw, err)
	}
	if rw == "randread" {
		return r.Jobs[0].Read.IOPS, nil
	}
	return r.Jobs[0].Write.IOPS, nil
}

package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"time"
)

// ctlMain talks to the test's control server on the host (reached through
// QEMU's guestfwd at $E2E_CTL):
//
//	ctl signal NAME [VALUE]   tell the host that NAME happened
//	ctl wait NAME [SECONDS]   block until the host signals NAME (bounded)
func ctlMain(args []string) error {
	fs := flag.NewFlagSet("ctl", flag.ExitOnError)
	fs.Parse(args)
	addr := os.Getenv("E2E_CTL")
	if addr == "" {
		return errors.New("E2E_CTL not set")
	}
	a := fs.Args()
	if len(a) < 2 {
		return errors.New("usage: ctl signal|wait NAME [VALUE|SECONDS]")
	}
	name := url.PathEscape(a[1])
	switch a[0] {
	case "signal":
		v := ""
		if len(a) > 2 {
			v = a[2]
		}
		_, err := get(fmt.Sprintf("http://%s/signal/%s?v=%s", addr, name, url.QueryEscape(v)), 30*time.Second)
		return err
	case "wait":
		secs := "120"
		if len(a) > 2 {
			secs = a[2]
		}
		d, err := time.ParseDuration(secs + "s")
		if err != nil {
			return err
		}
		body, err := get(fmt.Sprintf("http://%s/wait/%s?timeout=%s", addr, name, secs), d+30*time.Second)
		if err != nil {
			return err
		}
		fmt.Print(body)
		return nil
	}
	return fmt.Errorf("unknown ctl command %q", a[0])
}

func get(u string, timeout time.Duration) (string, error) {
	c := &http.Client{Timeout: timeout}
	resp, err := c.Get(u)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return "", err
	}
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("%s: %s: %s", u, resp.Status, b)
	}
	return string(b), nil
}

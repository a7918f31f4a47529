package main

import (
	"fmt"
	"io"
	"net"
	"time"
)

// forwardMain relays TCP connections from LISTEN to TARGET. The cluster
// nodes run it for the `kubernetes` Service: pods dial 10.0.0.1:443, which
// the node holds on its loopback, and reach the test apiserver on the host
// through the VM's guestfwd (the nodes run no kube-proxy).
func forwardMain(args []string) error {
	if len(args) != 2 {
		return fmt.Errorf("usage: forward LISTEN-ADDR TARGET-ADDR")
	}
	l, err := net.Listen("tcp", args[0])
	if err != nil {
		return err
	}
	for {
		c, err := l.Accept()
		if err != nil {
			return err
		}
		go func() {
			defer c.Close()
			t, err := net.DialTimeout("tcp", args[1], 10*time.Second)
			if err != nil {
				return
			}
			defer t.Close()
			done := make(chan struct{}, 2)
			go func() { io.Copy(t, c); t.(*net.TCPConn).CloseWrite(); done <- struct{}{} }()
			go func() { io.Copy(c, t); c.(*net.TCPConn).CloseWrite(); done <- struct{}{} }()
			<-done
			<-done
		}()
	}
}

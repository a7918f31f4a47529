// Package kubelettest plays the kubelet's side of plugin registration in
// tests.
package kubelettest

import (
	"net"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	registerapi "k8s.io/kubelet/pkg/apis/pluginregistration/v1"
)

// WaitSocket waits a bounded time for a server on the unix socket path.
// It connects rather than looks, since a stale socket may be there before
// the server replaces it.
func WaitSocket(t testing.TB, path string) {
	t.Helper()
	for range 500 {
		if c, err := net.Dial("unix", path); err == nil {
			c.Close()
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("nothing serves %s", path)
}

// Dial connects to a registration socket, once there is one, as the
// kubelet's plugin watcher does; the connection closes with the test.
func Dial(t testing.TB, socket string) registerapi.RegistrationClient {
	t.Helper()
	WaitSocket(t, socket)
	conn, err := grpc.NewClient("unix://"+socket, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return registerapi.NewRegistrationClient(conn)
}

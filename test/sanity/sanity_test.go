package sanity

import "testing"

// TestSanity: two storage servers, controller and node on separate sockets.
func TestSanity(t *testing.T) {
	Run(t, Options{Servers: []string{"s1", "s2"}})
}

package driver

import "testing"

func TestParseServers(t *testing.T) {
	refs, err := ParseServers("a=h1:1, b=[::1]:2")
	if err != nil || len(refs) != 2 || refs[1] != (ServerRef{"b", "[::1]:2"}) {
		t.Fatalf("ParseServers = %+v, %v", refs, err)
	}
	for _, bad := range []string{"", "a", "a=", "a=h:1,a=h:2", "A=h:1"} {
		if _, err := ParseServers(bad); err == nil {
			t.Errorf("ParseServers(%q) accepted", bad)
		}
	}
}

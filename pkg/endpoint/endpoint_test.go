package endpoint

import "testing"

func TestParse(t *testing.T) {
	for ep, want := range map[string]string{
		"unix:///tmp/x.sock": "unix /tmp/x.sock", "unix:rel.sock": "unix rel.sock",
		"tcp://127.0.0.1:1": "tcp 127.0.0.1:1", "127.0.0.1:2": "tcp 127.0.0.1:2",
	} {
		n, a, err := Parse(ep)
		if err != nil || n+" "+a != want {
			t.Errorf("Parse(%q) = %q %q %v", ep, n, a, err)
		}
	}
	for _, bad := range []string{"http://x", "unix://", ""} {
		if _, _, err := Parse(bad); err == nil {
			t.Errorf("Parse(%q) accepted", bad)
		}
	}
}

package treecopy

// HeaderFrame encodes a header frame for tests of Receive.
func HeaderFrame(kind byte, mode uint32, path, extra string) []byte {
	return (&header{kind: kind, mode: mode, path: path, extra: extra}).encode()
}

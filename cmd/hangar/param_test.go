package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestVolumeCreateParams(t *testing.T) {
	dir := t.TempDir()
	ep := "unix://" + filepath.Join(dir, "csi.sock")
	startCommand(t, "run", "--data", filepath.Join(dir, "data"), "--csi-endpoint", ep, "--nfs-listen", "127.0.0.1:0", "--mounter", "record")
	waitFor(t, "CSI socket", func() bool {
		_, err := os.Stat(filepath.Join(dir, "csi.sock"))
		return err == nil
	})
	var out, errb bytes.Buffer
	if code := run([]string{"volume", "create", "sq", "--size", "1Mi", "--param", "rootSquash=true", "--param", "maxInodes=100", "--csi-endpoint", ep}, &out, &errb); code != 0 {
		t.Fatalf("create with parameters: exit %d: %s", code, errb.String())
	}
	errb.Reset()
	code := run([]string{"volume", "create", "bad", "--param", "rootSquash=maybe", "--csi-endpoint", ep}, &out, &errb)
	if code != 1 || !strings.Contains(errb.String(), "InvalidArgument") || !strings.Contains(errb.String(), "rootSquash") {
		t.Fatalf("bad parameter: exit %d: %s", code, errb.String())
	}
	if code := run([]string{"volume", "create", "x", "--param", "novalue", "--csi-endpoint", ep}, &out, &errb); code != 2 {
		t.Fatalf("malformed --param: exit %d", code)
	}
}

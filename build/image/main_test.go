package main

import (
	"archive/tar"
	"bytes"
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/google/go-containerregistry/pkg/v1/layout"
)

// TestImage writes an image tarball and reads it back as an importer does:
// the OCI layout's index names it, the config has the entrypoint and user,
// the layer holds the files with their modes and the symlinks; building
// twice gives the same bytes.
func TestImage(t *testing.T) {
	dir := t.TempDir()
	bin := filepath.Join(dir, "tool")
	if err := os.WriteFile(bin, []byte("#!/bin/sh\necho hi\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "img.tar")
	args := []string{"-ref", "example.com/x/tool:1.2", "-out", out, "-file", bin + ":/usr/local/bin/tool",
		"-symlink", "/bin/t:/usr/local/bin/tool", "-entrypoint", "/usr/local/bin/tool", "-entrypoint", "serve", "-user", "65532:65532"}
	if err := run(args); err != nil {
		t.Fatal(err)
	}
	first, _ := os.ReadFile(out)
	if err := run(args); err != nil {
		t.Fatal(err)
	}
	if again, _ := os.ReadFile(out); !bytes.Equal(first, again) {
		t.Error("two builds differ")
	}

	// Unpack the tarball into an OCI layout directory.
	lay := filepath.Join(dir, "layout")
	tr := tar.NewReader(bytes.NewReader(first))
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		p := filepath.Join(lay, h.Name)
		if h.Typeflag == tar.TypeDir {
			os.MkdirAll(p, 0o755)
			continue
		}
		os.MkdirAll(filepath.Dir(p), 0o755)
		b, _ := io.ReadAll(tr)
		os.WriteFile(p, b, 0o644)
	}
	p, err := layout.FromPath(lay)
	if err != nil {
		t.Fatal(err)
	}
	idx, err := p.ImageIndex()
	if err != nil {
		t.Fatal(err)
	}
	im, err := idx.IndexManifest()
	if err != nil || len(im.Manifests) != 1 {
		t.Fatalf("index: %v, %v", im, err)
	}
	desc := im.Manifests[0]
	if desc.Annotations["io.containerd.image.name"] != "example.com/x/tool:1.2" || desc.Annotations["org.opencontainers.image.ref.name"] != "1.2" {
		t.Errorf("annotations %v", desc.Annotations)
	}
	img, err := idx.Image(desc.Digest)
	if err != nil {
		t.Fatal(err)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	if len(cf.Config.Entrypoint) != 2 || cf.Config.Entrypoint[0] != "/usr/local/bin/tool" || cf.Config.User != "65532:65532" || cf.OS != "linux" || cf.Architecture != "amd64" {
		t.Errorf("config %+v", cf.Config)
	}
	layers, err := img.Layers()
	if err != nil || len(layers) != 1 {
		t.Fatalf("layers %d, %v", len(layers), err)
	}
	rc, err := layers[0].Uncompressed()
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	got := map[string]*tar.Header{}
	lr := tar.NewReader(rc)
	for {
		h, err := lr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		got[h.Name] = h
	}
	if h := got["usr/local/bin/tool"]; h == nil || h.Mode != 0o755 || h.Uid != 0 || h.Size == 0 {
		t.Errorf("binary entry %+v", h)
	}
	if h := got["bin/t"]; h == nil || h.Typeflag != tar.TypeSymlink || h.Linkname != "/usr/local/bin/tool" {
		t.Errorf("symlink entry %+v", h)
	}
	for _, d := range []string{"usr/", "usr/local/", "usr/local/bin/", "bin/"} {
		if h := got[d]; h == nil || h.Typeflag != tar.TypeDir {
			t.Errorf("no directory %s", d)
		}
	}
}

func TestImageBadArgs(t *testing.T) {
	dir := t.TempDir()
	for _, args := range [][]string{
		{"-out", filepath.Join(dir, "x.tar"), "-file", "/bin/sh:/sh"},
		{"-ref", "x:1", "-out", filepath.Join(dir, "x.tar"), "-file", "/bin/sh:relative"},
		{"-ref", "x:1", "-out", filepath.Join(dir, "x.tar"), "-file", dir + ":/d"},
		{"-ref", "UPPER CASE", "-out", filepath.Join(dir, "x.tar"), "-file", "/bin/sh:/sh"},
	} {
		if err := run(args); err == nil {
			t.Errorf("run(%q) accepted", args)
		}
	}
}

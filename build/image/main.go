// Command image writes a container image as an OCI image-layout tarball
// (what `docker load`, `podman load` and `ctr images import` read) from
// files on this machine: no Docker, no registry, no base image. `make
// image` uses it for Hangar's image (the static binary, as the Dockerfile's
// final stage describes it) and for the images the cluster tests need.
//
//	image -ref ghcr.io/hangar-csi/hangar:dev -out hangar.tar \
//	      -file bin/hangar:/usr/local/bin/hangar -entrypoint /usr/local/bin/hangar -user 65532:65532
//
// The image is reproducible: every file and the config carry one fixed
// time (SOURCE_DATE_EPOCH, default 0).
package main

import (
	"archive/tar"
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

type listFlag []string

func (l *listFlag) String() string     { return strings.Join(*l, " ") }
func (l *listFlag) Set(v string) error { *l = append(*l, v); return nil }

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "image:", err)
		os.Exit(1)
	}
}

func run(args []string) error {
	fset := flag.NewFlagSet("image", flag.ContinueOnError)
	ref := fset.String("ref", "", "image reference, e.g. ghcr.io/hangar-csi/hangar:0.1.0 (required)")
	out := fset.String("out", "", "output tarball (required)")
	var files, links, env, entry listFlag
	fset.Var(&files, "file", "HOST:/IMAGE/PATH, a file to add (repeatable); mode is kept, owner is root")
	fset.Var(&links, "symlink", "/IMAGE/PATH:TARGET, a symlink to add (repeatable)")
	fset.Var(&env, "env", "NAME=VALUE (repeatable); PATH defaults to the usual one")
	fset.Var(&entry, "entrypoint", "entrypoint argument (repeatable, in order)")
	user := fset.String("user", "", "default user, e.g. 65532:65532")
	if err := fset.Parse(args); err != nil {
		return err
	}
	if *ref == "" || *out == "" || len(files) == 0 {
		return errors.New("-ref, -out and at least one -file are required")
	}
	tag, err := name.NewTag(*ref)
	if err != nil {
		return fmt.Errorf("-ref: %w", err)
	}
	epoch := time.Unix(0, 0).UTC()
	if s := os.Getenv("SOURCE_DATE_EPOCH"); s != "" {
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			return fmt.Errorf("SOURCE_DATE_EPOCH: %w", err)
		}
		epoch = time.Unix(n, 0).UTC()
	}
	layerTar, err := buildLayer(files, links, epoch)
	if err != nil {
		return err
	}
	layer, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(layerTar)), nil
	}, tarball.WithMediaType(types.OCILayer))
	if err != nil {
		return err
	}
	img, err := mutate.AppendLayers(mutate.MediaType(empty.Image, types.OCIManifestSchema1), layer)
	if err != nil {
		return err
	}
	img = mutate.ConfigMediaType(img, types.OCIConfigJSON)
	cf, err := img.ConfigFile()
	if err != nil {
		return err
	}
	cf = cf.DeepCopy()
	cf.Architecture, cf.OS = "amd64", "linux"
	cf.Created = v1.Time{Time: epoch}
	cf.Config.Entrypoint = entry
	cf.Config.User = *user
	cf.Config.Env = append([]string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"}, env...)
	cf.Config.Labels = map[string]string{"org.opencontainers.image.source": "https://github.com/hangar-csi/hangar"}
	if img, err = mutate.ConfigFile(img, cf); err != nil {
		return err
	}
	return writeOCITar(*out, img, tag)
}

// buildLayer makes the single layer: the files, the directories above them
// and the symlinks, in a stable order, owned by root.
func buildLayer(files, links []string, mtime time.Time) ([]byte, error) {
	type entry struct {
		hdr  *tar.Header
		data []byte
	}
	entries := map[string]entry{}
	addDirs := func(p string) {
		for d := path.Dir(p); d != "/" && d != "."; d = path.Dir(d) {
			entries[d] = entry{hdr: &tar.Header{Typeflag: tar.TypeDir, Name: strings.TrimPrefix(d, "/") + "/", Mode: 0o755, ModTime: mtime}}
		}
	}
	for _, f := range files {
		src, dst, ok := strings.Cut(f, ":")
		if !ok || !path.IsAbs(dst) {
			return nil, fmt.Errorf("-file %q: want HOST:/IMAGE/PATH", f)
		}
		fi, err := os.Stat(src)
		if err != nil {
			return nil, err
		}
		if !fi.Mode().IsRegular() {
			return nil, fmt.Errorf("-file %s: not a regular file", src)
		}
		data, err := os.ReadFile(src)
		if err != nil {
			return nil, err
		}
		dst = path.Clean(dst)
		addDirs(dst)
		entries[dst] = entry{hdr: &tar.Header{Typeflag: tar.TypeReg, Name: strings.TrimPrefix(dst, "/"), Mode: int64(fi.Mode().Perm()), Size: int64(len(data)), ModTime: mtime}, data: data}
	}
	for _, l := range links {
		dst, target, ok := strings.Cut(l, ":")
		if !ok || !path.IsAbs(dst) || target == "" {
			return nil, fmt.Errorf("-symlink %q: want /IMAGE/PATH:TARGET", l)
		}
		dst = path.Clean(dst)
		addDirs(dst)
		entries[dst] = entry{hdr: &tar.Header{Typeflag: tar.TypeSymlink, Name: strings.TrimPrefix(dst, "/"), Linkname: target, Mode: 0o777, ModTime: mtime}}
	}
	names := make([]string, 0, len(entries))
	for n := range entries {
		names = append(names, n)
	}
	sort.Strings(names)
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, n := range names {
		e := entries[n]
		e.hdr.Format = tar.FormatPAX
		if err := tw.WriteHeader(e.hdr); err != nil {
			return nil, err
		}
		if _, err := tw.Write(e.data); err != nil {
			return nil, err
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// writeOCITar writes img as an OCI image layout and tars it to out. The
// index names the image both ways importers look for: the OCI ref.name
// annotation (the tag) and containerd's io.containerd.image.name (the
// full reference).
func writeOCITar(out string, img v1.Image, tag name.Tag) error {
	dir, err := os.MkdirTemp(filepath.Dir(out), ".image-*")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	p, err := layout.Write(dir, empty.Index)
	if err != nil {
		return err
	}
	if err := p.AppendImage(img, layout.WithAnnotations(map[string]string{
		"org.opencontainers.image.ref.name": tag.TagStr(),
		"io.containerd.image.name":          tag.Name(),
	})); err != nil {
		return err
	}
	tmp := out + ".tmp"
	f, err := os.Create(tmp)
	if err != nil {
		return err
	}
	tw := tar.NewWriter(f)
	err = filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || p == dir {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		fi, err := d.Info()
		if err != nil {
			return err
		}
		hdr, err := tar.FileInfoHeader(fi, "")
		if err != nil {
			return err
		}
		hdr.Name, hdr.ModTime, hdr.Uid, hdr.Gid, hdr.Uname, hdr.Gname = filepath.ToSlash(rel), time.Unix(0, 0), 0, 0, "", ""
		if d.IsDir() {
			hdr.Name += "/"
		}
		if err := tw.WriteHeader(hdr); err != nil {
			return err
		}
		if d.IsDir() {
			return nil
		}
		src, err := os.Open(p)
		if err != nil {
			return err
		}
		defer src.Close()
		_, err = io.Copy(tw, src)
		return err
	})
	if err == nil {
		err = tw.Close()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(tmp)
		return err
	}
	return os.Rename(tmp, out)
}

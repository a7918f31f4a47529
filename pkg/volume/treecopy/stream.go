package treecopy

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"path"
	"strings"

	"golang.org/x/sys/unix"
)

// A tree can also travel as a stream of frames (between storage servers):
// Send walks a tree like Copy and emits frames, Receive rebuilds the tree
// from them. The receiver trusts nothing in the stream: every path is
// checked to be a clean relative path, resolved beneath the destination
// without following symlinks (openat2 RESOLVE_BENEATH|RESOLVE_NO_SYMLINKS),
// only the object types Copy makes are made, and the data is bounded.
//
// Frame kinds: 'D' directory, 'F' regular file (then 'C' chunks of data
// and 'z' when it ends), 'L' symlink, 'N' device/FIFO/socket, 'H' hard link
// to an earlier path, 'A' a directory's attributes (after its contents),
// 'Q' end of tree. A stream without 'Q' is incomplete and fails.

// ChunkSize is the most file data one frame carries.
const ChunkSize = 1 << 20

type header struct {
	kind  byte
	mode  uint32
	uid   uint32
	gid   uint32
	atime unix.Timespec
	mtime unix.Timespec
	rdev  uint64
	size  int64
	path  string
	extra string // symlink target, hard link target
}

func (h *header) encode() []byte {
	var b bytes.Buffer
	b.WriteByte(h.kind)
	for _, v := range []any{h.mode, h.uid, h.gid, h.atime.Sec, h.atime.Nsec, h.mtime.Sec, h.mtime.Nsec, h.rdev, h.size, uint32(len(h.path))} {
		binary.Write(&b, binary.BigEndian, v)
	}
	b.WriteString(h.path)
	binary.Write(&b, binary.BigEndian, uint32(len(h.extra)))
	b.WriteString(h.extra)
	return b.Bytes()
}

var errFrame = errors.New("treecopy: malformed frame")

func decodeHeader(f []byte) (*header, error) {
	r := bytes.NewReader(f)
	h := &header{}
	var err error
	if h.kind, err = r.ReadByte(); err != nil {
		return nil, errFrame
	}
	var plen, elen uint32
	for _, v := range []any{&h.mode, &h.uid, &h.gid, &h.atime.Sec, &h.atime.Nsec, &h.mtime.Sec, &h.mtime.Nsec, &h.rdev, &h.size, &plen} {
		if err := binary.Read(r, binary.BigEndian, v); err != nil {
			return nil, errFrame
		}
	}
	if int(plen) > r.Len() || plen > unix.PathMax {
		return nil, errFrame
	}
	p := make([]byte, plen)
	r.Read(p)
	if err := binary.Read(r, binary.BigEndian, &elen); err != nil || int(elen) != r.Len() || elen > unix.PathMax {
		return nil, errFrame
	}
	e := make([]byte, elen)
	r.Read(e)
	h.path, h.extra = string(p), string(e)
	return h, nil
}

func statHeader(kind byte, p string, st *unix.Stat_t) *header {
	return &header{kind: kind, mode: st.Mode, uid: st.Uid, gid: st.Gid, atime: st.Atim, mtime: st.Mtim, rdev: st.Rdev, size: st.Size, path: p}
}

// Send walks the tree at src (trusted as a path, not below it) and passes
// its frames to emit, in order. Like Copy it never follows symlinks, never
// opens devices, never crosses mounts. Frames may be reused after emit
// returns.
func Send(src string, emit func(frame []byte) error) (Stats, error) {
	s := &sender{emit: emit, links: map[uint64]string{}}
	fd, err := unix.Open(src, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return s.st, fmt.Errorf("treecopy: opening source %s: %w", src, err)
	}
	defer unix.Close(fd)
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return s.st, err
	}
	s.dev = st.Dev
	if err := s.dir(fd, "."); err != nil {
		return s.st, err
	}
	if err := emit(statHeader('A', ".", &st).encode()); err != nil {
		return s.st, err
	}
	s.st.Dirs++
	return s.st, emit([]byte{'Q'})
}

type sender struct {
	emit  func([]byte) error
	st    Stats
	dev   uint64
	links map[uint64]string
	buf   []byte
}

func (s *sender) dir(fd int, rel string) error {
	names, err := readNames(fd)
	if err != nil {
		return fmt.Errorf("treecopy: reading %s: %w", rel, err)
	}
	for _, name := range names {
		if err := s.entry(fd, rel, name); err != nil && !errors.Is(err, unix.ENOENT) {
			return err
		}
	}
	return nil
}

func (s *sender) entry(dfd int, rel, name string) error {
	p := path.Join(rel, name)
	var st unix.Stat_t
	if err := unix.Fstatat(dfd, name, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return fmt.Errorf("treecopy: stat %s: %w", p, err)
	}
	if st.Dev != s.dev {
		s.st.Skipped++
		return nil
	}
	typ := st.Mode & unix.S_IFMT
	if typ != unix.S_IFDIR && st.Nlink > 1 {
		if first, ok := s.links[st.Ino]; ok {
			return s.emit((&header{kind: 'H', path: p, extra: first}).encode())
		}
		defer func() { s.links[st.Ino] = p }()
	}
	switch typ {
	case unix.S_IFDIR:
		child, err := openSame(dfd, name, unix.O_RDONLY|unix.O_DIRECTORY, &st)
		if err != nil {
			return fmt.Errorf("treecopy: opening %s: %w", p, err)
		}
		defer unix.Close(child)
		if err := s.emit(statHeader('D', p, &st).encode()); err != nil {
			return err
		}
		if err := s.dir(child, p); err != nil {
			return err
		}
		s.st.Dirs++
		return s.emit(statHeader('A', p, &st).encode())
	case unix.S_IFREG:
		return s.file(dfd, p, name, &st)
	case unix.S_IFLNK:
		target, err := readlinkat(dfd, name)
		if err != nil {
			return fmt.Errorf("treecopy: readlink %s: %w", p, err)
		}
		h := statHeader('L', p, &st)
		h.extra = target
		s.st.Others++
		return s.emit(h.encode())
	case unix.S_IFCHR, unix.S_IFBLK, unix.S_IFIFO, unix.S_IFSOCK:
		s.st.Others++
		return s.emit(statHeader('N', p, &st).encode())
	}
	return fmt.Errorf("treecopy: %s has unknown type %#o", p, typ)
}

func (s *sender) file(dfd int, p, name string, st *unix.Stat_t) error {
	in, err := openSame(dfd, name, unix.O_RDONLY, st)
	if err != nil {
		return fmt.Errorf("treecopy: opening %s: %w", p, err)
	}
	defer unix.Close(in)
	var now unix.Stat_t
	if err := unix.Fstat(in, &now); err != nil {
		return err
	}
	if err := s.emit(statHeader('F', p, &now).encode()); err != nil {
		return err
	}
	if s.buf == nil {
		s.buf = make([]byte, 9+ChunkSize)
	}
	for off := int64(0); off < now.Size; {
		data, err := unix.Seek(in, off, unix.SEEK_DATA)
		if err == unix.ENXIO {
			break
		}
		if err != nil {
			return err
		}
		hole, err := unix.Seek(in, data, unix.SEEK_HOLE)
		if err != nil {
			return err
		}
		for off = data; off < min(hole, now.Size); {
			n, err := unix.Pread(in, s.buf[9:9+min(ChunkSize, min(hole, now.Size)-off)], off)
			if err == unix.EINTR {
				continue
			}
			if err != nil {
				return fmt.Errorf("treecopy: reading %s: %w", p, err)
			}
			if n == 0 {
				break // shrank meanwhile
			}
			s.buf[0] = 'C'
			binary.BigEndian.PutUint64(s.buf[1:9], uint64(off))
			if err := s.emit(s.buf[:9+n]); err != nil {
				return err
			}
			off += int64(n)
		}
		off = max(off, hole)
	}
	s.st.Files++
	s.st.Copied++
	s.st.Bytes += now.Size
	return s.emit([]byte{'z'})
}

// cleanPath checks p is a relative path of real names ("." alone names
// the root) and splits it into its parent and last name.
func cleanPath(p string, rootOK bool) (parent, name string, err error) {
	if p == "." && rootOK {
		return "", ".", nil
	}
	if p == "" || len(p) > unix.PathMax || strings.ContainsRune(p, 0) {
		return "", "", fmt.Errorf("treecopy: bad path %q in stream", p)
	}
	for _, c := range strings.Split(p, "/") {
		if c == "" || c == "." || c == ".." || len(c) > 255 {
			return "", "", fmt.Errorf("treecopy: bad path %q in stream", p)
		}
	}
	parent, name = path.Split(p)
	return strings.TrimSuffix(parent, "/"), name, nil
}

// Receive builds the tree sent by a Send into dst, which must not exist
// (its parent must). next returns the frames in order. At most maxBytes of
// file data are accepted (0: no bound).
func Receive(dst string, maxBytes int64, next func() ([]byte, error)) (Stats, error) {
	r := &receiver{maxBytes: maxBytes, file: -1}
	if err := unix.Mkdir(dst, 0o700); err != nil {
		return r.st, fmt.Errorf("treecopy: creating %s: %w", dst, err)
	}
	root, err := unix.Open(dst, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return r.st, err
	}
	defer unix.Close(root)
	r.root = root
	defer r.closeFile()
	for {
		f, err := next()
		if err != nil {
			return r.st, fmt.Errorf("treecopy: stream ended before the tree did: %w", err)
		}
		if len(f) == 0 {
			return r.st, errFrame
		}
		switch f[0] {
		case 'Q':
			if r.file >= 0 {
				return r.st, errFrame
			}
			return r.st, nil
		case 'C':
			if err := r.chunk(f); err != nil {
				return r.st, err
			}
		case 'z':
			if err := r.endFile(); err != nil {
				return r.st, err
			}
		default:
			h, err := decodeHeader(f)
			if err != nil {
				return r.st, err
			}
			if r.file >= 0 {
				return r.st, fmt.Errorf("%w: %q before the end of the file being received", errFrame, h.kind)
			}
			if err := r.entry(h); err != nil {
				return r.st, err
			}
		}
	}
}

type receiver struct {
	root     int
	st       Stats
	maxBytes int64
	got      int64
	file     int // the regular file being received, or -1 (set in entry)
	fileHdr  *header
}

func (r *receiver) closeFile() {
	if r.file >= 0 {
		unix.Close(r.file)
	}
	r.file = -1
}

// openDir opens directory p of the destination without following a
// symlink anywhere on the way.
func (r *receiver) openDir(p string) (int, error) {
	if p == "" {
		return unix.Openat(r.root, ".", unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	}
	return unix.Openat2(r.root, p, &unix.OpenHow{
		Flags:   unix.O_RDONLY | unix.O_DIRECTORY | unix.O_NOFOLLOW | unix.O_CLOEXEC,
		Resolve: unix.RESOLVE_BENEATH | unix.RESOLVE_NO_SYMLINKS | unix.RESOLVE_NO_MAGICLINKS | unix.RESOLVE_NO_XDEV,
	})
}

func (r *receiver) entry(h *header) error {
	parent, name, err := cleanPath(h.path, h.kind == 'A')
	if err != nil {
		return err
	}
	dfd, err := r.openDir(parent)
	if err != nil {
		return fmt.Errorf("treecopy: parent of %s: %w", h.path, err)
	}
	defer unix.Close(dfd)
	typ := h.mode & unix.S_IFMT
	st := unix.Stat_t{Mode: h.mode, Uid: h.uid, Gid: h.gid, Atim: h.atime, Mtim: h.mtime}
	switch h.kind {
	case 'D':
		if typ != unix.S_IFDIR {
			return fmt.Errorf("%w: directory %s of type %#o", errFrame, h.path, typ)
		}
		return unix.Mkdirat(dfd, name, 0o700)
	case 'A':
		if typ != unix.S_IFDIR {
			return fmt.Errorf("%w: directory %s of type %#o", errFrame, h.path, typ)
		}
		fd := dfd
		if name != "." {
			if fd, err = r.openDir(h.path); err != nil {
				return err
			}
			defer unix.Close(fd)
		}
		r.st.Dirs++
		return setAttrs(fd, "", &st, unix.AT_EMPTY_PATH)
	case 'F':
		if typ != unix.S_IFREG || h.size < 0 {
			return fmt.Errorf("%w: file %s of type %#o", errFrame, h.path, typ)
		}
		if r.maxBytes > 0 && h.size > r.maxBytes {
			return fmt.Errorf("treecopy: file %s of %d bytes is larger than the %d bytes the tree may hold", h.path, h.size, r.maxBytes)
		}
		fd, err := unix.Openat(dfd, name, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o600)
		if err != nil {
			return fmt.Errorf("treecopy: creating %s: %w", h.path, err)
		}
		r.file, r.fileHdr = fd, h
		return nil
	case 'L':
		if typ != unix.S_IFLNK {
			return fmt.Errorf("%w: symlink %s of type %#o", errFrame, h.path, typ)
		}
		if err := unix.Symlinkat(h.extra, dfd, name); err != nil {
			return fmt.Errorf("treecopy: symlink %s: %w", h.path, err)
		}
	case 'N':
		switch typ {
		case unix.S_IFCHR, unix.S_IFBLK, unix.S_IFIFO, unix.S_IFSOCK:
		default:
			return fmt.Errorf("%w: node %s of type %#o", errFrame, h.path, typ)
		}
		if err := unix.Mknodat(dfd, name, typ|0o600, int(h.rdev)); err != nil {
			return fmt.Errorf("treecopy: mknod %s: %w", h.path, err)
		}
	case 'H':
		if _, _, err := cleanPath(h.extra, false); err != nil {
			return err
		}
		tfd, err := unix.Openat2(r.root, h.extra, &unix.OpenHow{
			Flags:   unix.O_PATH | unix.O_NOFOLLOW | unix.O_CLOEXEC,
			Resolve: unix.RESOLVE_BENEATH | unix.RESOLVE_NO_SYMLINKS | unix.RESOLVE_NO_MAGICLINKS | unix.RESOLVE_NO_XDEV,
		})
		if err != nil {
			return fmt.Errorf("treecopy: hard link %s to %s: %w", h.path, h.extra, err)
		}
		defer unix.Close(tfd)
		// linkat refuses directories itself.
		if err := unix.Linkat(tfd, "", dfd, name, unix.AT_EMPTY_PATH); err != nil {
			return fmt.Errorf("treecopy: hard link %s to %s: %w", h.path, h.extra, err)
		}
		return nil
	default:
		return fmt.Errorf("%w: kind %q", errFrame, h.kind)
	}
	r.st.Others++
	return setAttrs(dfd, name, &st, unix.AT_SYMLINK_NOFOLLOW)
}

func (r *receiver) chunk(f []byte) error {
	if r.file < 0 || len(f) < 9 {
		return errFrame
	}
	off := int64(binary.BigEndian.Uint64(f[1:9]))
	data := f[9:]
	if off < 0 || off+int64(len(data)) > r.fileHdr.size {
		return fmt.Errorf("%w: data beyond the end of %s", errFrame, r.fileHdr.path)
	}
	r.got += int64(len(data))
	if r.maxBytes > 0 && r.got > r.maxBytes {
		return fmt.Errorf("treecopy: the tree holds more than %d bytes of data", r.maxBytes)
	}
	for len(data) > 0 {
		n, err := unix.Pwrite(r.file, data, off)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return fmt.Errorf("treecopy: writing %s: %w", r.fileHdr.path, err)
		}
		data, off = data[n:], off+int64(n)
	}
	return nil
}

func (r *receiver) endFile() error {
	if r.file < 0 {
		return errFrame
	}
	h := r.fileHdr
	defer r.closeFile()
	if err := unix.Ftruncate(r.file, h.size); err != nil {
		return err
	}
	st := unix.Stat_t{Mode: h.mode, Uid: h.uid, Gid: h.gid, Atim: h.atime, Mtim: h.mtime}
	r.st.Files++
	r.st.Copied++
	r.st.Bytes += h.size
	return setAttrs(r.file, "", &st, unix.AT_EMPTY_PATH)
}

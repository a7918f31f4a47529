package nfs3

import (
	"fmt"
	"strings"
	"testing"

	"github.com/hangar-csi/hangar/pkg/nfs/rpc"
	"github.com/hangar-csi/hangar/pkg/nfs/xdr"
	"github.com/hangar-csi/hangar/pkg/vfs"
)

type page struct {
	entries []vfs.DirEntry
	verf    vfs.Verifier
	eof     bool
	size    int // bytes of results, status included
}

func (e *env) readdir(plus bool, cookie uint64, verf vfs.Verifier, dircount, count uint32) (uint32, page) {
	e.t.Helper()
	args := enc(func(w *xdr.Writer) {
		w.Opaque(e.root)
		w.Uint64(cookie)
		w.Fixed(verf[:])
		if plus {
			w.Uint32(dircount)
		}
		w.Uint32(count)
	})
	proc := uint32(ProcReadDir)
	if plus {
		proc = ProcReadDirPlus
	}
	st, res := e.call(proc, args)
	if st != rpc.Success {
		e.t.Fatalf("accept stat %d", st)
	}
	r := xdr.NewReader(res)
	s := r.Uint32()
	DecodePostOpAttr(r)
	p := page{size: len(res)}
	if s != StatusOK {
		if len(r.Remaining()) != 0 {
			e.t.Fatalf("%s: trailing bytes after failure", StatusName(s))
		}
		return s, p
	}
	copy(p.verf[:], r.Fixed(8))
	for r.Bool() {
		var d vfs.DirEntry
		d.FileID = r.Uint64()
		d.Name = r.String(255)
		d.Cookie = r.Uint64()
		if plus {
			d.Attr = DecodePostOpAttr(r)
			d.Handle = DecodePostOpFH(r)
		}
		p.entries = append(p.entries, d)
	}
	p.eof = r.Bool()
	if r.Err() != nil || len(r.Remaining()) != 0 {
		e.t.Fatalf("bad READDIR reply: %v, %d trailing", r.Err(), len(r.Remaining()))
	}
	return s, p
}

func (e *env) populate(n int) []string {
	var names []string
	for i := range n {
		// Name lengths 1..13 exercise every padding case.
		name := fmt.Sprintf("%d%s", i, strings.Repeat("n", i%13))
		e.create(e.root, name)
		names = append(names, name)
	}
	return names
}

func TestReadDirFillsExactly(t *testing.T) {
	e := newEnv(t)
	names := e.populate(40)
	_, full := e.readdir(false, 0, vfs.Verifier{}, 0, 1<<20)
	if !full.eof || len(full.entries) != len(names) {
		t.Fatalf("full listing: %d entries, eof %v", len(full.entries), full.eof)
	}
	// Reply sizes as the RFC lays them out: status, post_op_attr,
	// cookieverf, per entry (follows, fileid, name, cookie), end, eof.
	fixed := 4 + 88 + 8 + 4 + 4
	for count := fixed + entrySize(full.entries[0].Name); count < fixed+len(names)*30; count += 7 {
		s, p := e.readdir(false, 0, vfs.Verifier{}, 0, uint32(count))
		if s != StatusOK {
			t.Fatalf("count %d: %s", count, StatusName(s))
		}
		if p.size > count {
			t.Fatalf("count %d: reply of %d bytes", count, p.size)
		}
		if !p.eof {
			next := full.entries[len(p.entries)]
			if p.size+entrySize(next.Name) <= count {
				t.Fatalf("count %d: stopped at %d bytes but %q (%d bytes) fits", count, p.size, next.Name, entrySize(next.Name))
			}
		}
		if len(p.entries) > 0 {
			want := fixed
			for _, d := range p.entries {
				want += 24 + (len(d.Name)+3)&^3
			}
			if want != p.size {
				t.Fatalf("count %d: size %d, computed %d", count, p.size, want)
			}
		}
	}
}

func TestReadDirTooSmall(t *testing.T) {
	e := newEnv(t)
	e.populate(3)
	if s, p := e.readdir(false, 0, vfs.Verifier{}, 0, 100); s != StatusTooSmall || p.size != 4+88 {
		t.Errorf("READDIR count 100: %s, %d bytes", StatusName(s), p.size)
	}
	if s, _ := e.readdir(true, 0, vfs.Verifier{}, 4096, 200); s != StatusTooSmall {
		t.Errorf("READDIRPLUS maxcount 200: %s", StatusName(s))
	}
	if s, _ := e.readdir(true, 0, vfs.Verifier{}, 8, 4096); s != StatusTooSmall {
		t.Errorf("READDIRPLUS dircount 8: %s", StatusName(s))
	}
	// An empty directory fits in any count that holds the fixed part.
	e2 := newEnv(t)
	if s, p := e2.readdir(false, 0, vfs.Verifier{}, 0, 108); s != StatusOK || !p.eof || p.size != 108 {
		t.Errorf("empty dir: %s eof=%v size=%d", StatusName(s), p.eof, p.size)
	}
	if s, _ := e2.readdir(false, 0, vfs.Verifier{}, 0, 107); s != StatusTooSmall {
		t.Errorf("empty dir, count 107: %s", StatusName(s))
	}
}

func TestReadDirPlusLimits(t *testing.T) {
	e := newEnv(t)
	names := e.populate(30)
	_, full := e.readdir(true, 0, vfs.Verifier{}, 1<<20, 1<<20)
	if len(full.entries) != len(names) || !full.eof {
		t.Fatalf("full: %d entries", len(full.entries))
	}
	for _, d := range full.entries {
		if d.Attr == nil || len(d.Handle) == 0 || d.Attr.FileID != d.FileID {
			t.Fatalf("entry %q lacks attrs/handle", d.Name)
		}
	}
	// maxcount bounds the whole reply.
	for maxcount := 300; maxcount < 5000; maxcount += 37 {
		s, p := e.readdir(true, 0, vfs.Verifier{}, 1<<20, uint32(maxcount))
		if s != StatusOK {
			t.Fatalf("maxcount %d: %s", maxcount, StatusName(s))
		}
		if p.size > maxcount {
			t.Fatalf("maxcount %d: %d bytes", maxcount, p.size)
		}
		if !p.eof {
			next := full.entries[len(p.entries)]
			if p.size+entryPlusSize(&next) <= maxcount {
				t.Fatalf("maxcount %d: %d bytes, next entry (%d) fits", maxcount, p.size, entryPlusSize(&next))
			}
		}
	}
	// dircount bounds fileid+name+cookie.
	for dircount := 24; dircount < 800; dircount += 5 {
		s, p := e.readdir(true, 0, vfs.Verifier{}, uint32(dircount), 1<<20)
		if s != StatusOK {
			t.Fatalf("dircount %d: %s", dircount, StatusName(s))
		}
		used := 0
		for _, d := range p.entries {
			used += dirInfoSize(d.Name)
		}
		if used > dircount {
			t.Fatalf("dircount %d: used %d", dircount, used)
		}
		if !p.eof && used+dirInfoSize(full.entries[len(p.entries)].Name) <= dircount {
			t.Fatalf("dircount %d: stopped early at %d", dircount, used)
		}
	}
}

func TestReadDirCookiesContinue(t *testing.T) {
	for _, plus := range []bool{false, true} {
		e := newEnv(t)
		names := e.populate(50)
		seen := map[string]int{}
		var cookie uint64
		var verf vfs.Verifier
		for pages := 0; ; pages++ {
			if pages > 100 {
				t.Fatal("listing does not end")
			}
			s, p := e.readdir(plus, cookie, verf, 200, 400)
			if s != StatusOK {
				t.Fatal(StatusName(s))
			}
			for _, d := range p.entries {
				seen[d.Name]++
			}
			if p.eof {
				break
			}
			cookie, verf = p.entries[len(p.entries)-1].Cookie, p.verf
			// A new entry appears mid-listing: it may or may not be
			// listed, but nothing else may be lost or repeated.
			if pages == 1 {
				e.create(e.root, "late")
			}
		}
		for _, n := range names {
			if seen[n] != 1 {
				t.Errorf("plus=%v: %q listed %d times", plus, n, seen[n])
			}
		}
		// A bad verifier with a non-zero cookie is BAD_COOKIE.
		if s, _ := e.readdir(plus, 3, vfs.Verifier{9}, 200, 4000); s != StatusBadCookie {
			t.Errorf("plus=%v: bad verifier: %s", plus, StatusName(s))
		}
	}
}

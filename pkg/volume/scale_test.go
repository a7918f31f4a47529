package volume

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
)

func recountPromised(s *Store) int64 {
	var n int64
	for _, v := range s.List() {
		n += v.CapacityBytes
	}
	return n
}

// The promised total is kept as volumes come, grow and go; after any mix
// of concurrent creates, expansions, deletes and retried creates it equals
// a recount, and so it does after reopening.
func TestPromisedEqualsRecount(t *testing.T) {
	dir := t.TempDir()
	s := open(t, dir)
	var wg sync.WaitGroup
	var ops atomic.Int64
	for w := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := rand.New(rand.NewPCG(uint64(w), 7))
			for range 60 {
				name := fmt.Sprintf("v%d", r.IntN(20)) // shared names: retries and races
				switch r.IntN(3) {
				case 0:
					c := int64(1+r.IntN(8)) << 20
					if _, _, err := s.Create(Request{Name: name, CapacityBytes: c}, nil); err != nil && !errors.Is(err, ErrExists) {
						t.Error(err)
					}
				case 1:
					if v, err := s.GetByName(name); err == nil {
						if _, err := s.Expand(v.ID, v.CapacityBytes+int64(r.IntN(3))<<20, nil); err != nil && !errors.Is(err, ErrNotFound) && !errors.Is(err, ErrShrink) {
							t.Error(err)
						}
					}
				case 2:
					if v, err := s.GetByName(name); err == nil {
						if err := s.Delete(v.ID); err != nil {
							t.Error(err)
						}
					}
				}
				ops.Add(1)
			}
		}()
	}
	wg.Wait()
	if got, want := s.Promised(), recountPromised(s); got != want {
		t.Fatalf("Promised %d, recount %d", got, want)
	}
	if s.Count() != len(s.List()) {
		t.Fatalf("Count %d, List %d", s.Count(), len(s.List()))
	}
	want := s.Promised()
	s.Close()
	s2 := open(t, dir)
	if got := s2.Promised(); got != want || got != recountPromised(s2) {
		t.Fatalf("after reopen: Promised %d, before %d, recount %d", got, want, recountPromised(s2))
	}
}

// Admit sees every promise, those of creates still writing their records
// included: of 40 concurrent creates where 10 fit, exactly 10 succeed.
func TestAdmitExactUnderConcurrency(t *testing.T) {
	s := open(t, t.TempDir())
	const size, room = 1 << 20, 10 << 20
	full := errors.New("full")
	admit := func(need, promised int64) error {
		if promised+need > room {
			return full
		}
		return nil
	}
	var wg sync.WaitGroup
	var ok, refused atomic.Int64
	for i := range 40 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, _, err := s.Create(Request{Name: fmt.Sprint("c", i), CapacityBytes: size}, admit)
			switch {
			case err == nil:
				ok.Add(1)
			case errors.Is(err, full):
				refused.Add(1)
			default:
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	if ok.Load() != 10 || refused.Load() != 30 {
		t.Fatalf("%d created, %d refused; want 10 and 30", ok.Load(), refused.Load())
	}
	// A retried create of an existing volume promises nothing new, so it
	// succeeds with the room full.
	v := s.List()[0]
	if again, created, err := s.Create(Request{Name: v.Name, CapacityBytes: size}, admit); err != nil || created || again.ID != v.ID {
		t.Fatalf("retried create: %v, %v, created %v", again.ID, err, created)
	}
	// Expansions are admitted against the same total.
	if _, err := s.Expand(v.ID, v.CapacityBytes+1, admit); !errors.Is(err, full) {
		t.Fatalf("expansion past the room: %v", err)
	}
	if err := s.Delete(v.ID); err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.Create(Request{Name: "after-delete", CapacityBytes: size}, admit); err != nil {
		t.Fatalf("create into the room a delete freed: %v", err)
	}
}

// Paging by the last ID of the previous page is correct while volumes come
// and go: pages are sorted and start after the token, and a volume that
// exists throughout appears exactly once in every pass.
func TestPageDuringChurn(t *testing.T) {
	s := open(t, t.TempDir())
	stable := map[string]bool{}
	for i := range 60 {
		stable[mustCreate(t, s, fmt.Sprint("stable", i), 1).ID] = true
	}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				v, _, err := s.Create(Request{Name: fmt.Sprintf("churn%d-%d", w, i), CapacityBytes: 1}, nil)
				if err != nil {
					t.Error(err)
					return
				}
				if i%2 == 0 {
					if err := s.Delete(v.ID); err != nil {
						t.Error(err)
						return
					}
				}
			}
		}()
	}
	for pass := range 20 {
		seen := map[string]int{}
		after := ""
		for {
			page, more := s.Page(after, 7)
			if len(page) > 7 || (more && len(page) != 7) {
				t.Fatalf("page of %d (more %v) with max 7", len(page), more)
			}
			for i, v := range page {
				if v.ID <= after || (i > 0 && v.ID <= page[i-1].ID) {
					t.Fatalf("pass %d: %s out of order after %s", pass, v.ID, after)
				}
				seen[v.ID]++
			}
			if !more {
				break
			}
			after = page[len(page)-1].ID
		}
		for id := range stable {
			if seen[id] != 1 {
				t.Fatalf("pass %d: stable volume %s listed %d times", pass, id, seen[id])
			}
		}
	}
	close(stop)
	wg.Wait()
	all, more := s.Page("", 0)
	if more || !slices.IsSortedFunc(all, func(a, b Volume) int { return cmpID(a.ID, b.ID) }) || len(all) != s.Count() {
		t.Fatalf("full listing: %d volumes (more %v), Count %d", len(all), more, s.Count())
	}
}

func cmpID(a, b string) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// The index agrees with a sorted slice after random inserts and deletes.
func TestIDIndex(t *testing.T) {
	var x idIndex
	ref := map[string]bool{}
	r := rand.New(rand.NewPCG(1, 2))
	for range 20000 {
		id := fmt.Sprintf("%04x", r.IntN(3000))
		if r.IntN(3) == 0 {
			x.delete(id)
			delete(ref, id)
		} else {
			x.insert(id)
			ref[id] = true
		}
	}
	want := make([]string, 0, len(ref))
	for id := range ref {
		want = append(want, id)
	}
	slices.Sort(want)
	var got []string
	x.after("", func(id string) bool { got = append(got, id); return true })
	if !slices.Equal(got, want) || x.n != len(want) {
		t.Fatalf("index has %d IDs (n %d), want %d", len(got), x.n, len(want))
	}
	for range 200 {
		from := fmt.Sprintf("%04x", r.IntN(3000))
		i, _ := slices.BinarySearch(want, from)
		if i < len(want) && want[i] == from {
			i++
		}
		var page []string
		x.after(from, func(id string) bool { page = append(page, id); return len(page) < 10 })
		if !slices.Equal(page, want[i:min(i+10, len(want))]) {
			t.Fatalf("after %s: %v, want %v", from, page, want[i:min(i+10, len(want))])
		}
	}
}

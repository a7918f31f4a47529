package localfs

import "sync/atomic"

// The capacity check of every CreateVolume needs how much of their limits
// the volumes already use (that part of each promise is no longer in the
// disk's free space). Summing it over the exports per call cost O(n); the
// FS keeps the sum instead, moved by every change of an export's usage or
// byte limit, so reading it is one atomic load.

// committed is min(usage, byte limit) of an export, 0 when unlimited: the
// part of its promise already allocated. q.mu held.
func (q *quota) committed() int64 {
	if q.maxBytes <= 0 {
		return 0
	}
	return min(max(q.bytes, 0), q.maxBytes)
}

// track follows a change of q's usage or limits: call it with q.mu held,
// with what committed() was before the change. Exports not (or no longer)
// registered have no sum.
func (q *quota) track(before int64) {
	if q.sum != nil {
		if d := q.committed() - before; d != 0 {
			q.sum.Add(d)
		}
	}
}

// joinSum starts counting q in sum; leaveSum stops, taking q's part out.
func (q *quota) joinSum(sum *atomic.Int64) {
	q.mu.Lock()
	q.sum = sum
	sum.Add(q.committed())
	q.mu.Unlock()
}

func (q *quota) leaveSum() {
	q.mu.Lock()
	if q.sum != nil {
		q.sum.Add(-q.committed())
		q.sum = nil
	}
	q.mu.Unlock()
}

// CommittedBytes is, over every export, the usage up to its byte limit
// (exports without one count nothing): the bytes of the volumes' promises
// already allocated on disk.
func (f *FS) CommittedBytes() int64 { return f.committed.Load() }

// LoadUsage reads a usage file written for ExportConfig.UsageFile.
func LoadUsage(file string) (Usage, error) { return loadUsage(file) }

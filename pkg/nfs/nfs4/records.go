package nfs4

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"hash/crc32"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"github.com/go-logr/logr"

	"github.com/hangar-csi/hangar/pkg/fileutil"
)

// Durable client records (RFC 8881 section 8.4.3): the server remembers
// across a restart which clients may hold state, so that after a crash it
// can let exactly those reclaim it, and end the grace period as soon as
// all of them said RECLAIM_COMPLETE.
//
// One small file per client: a client event (confirmed, destroyed,
// expired) is one atomic write or one unlink, whatever the number of
// clients, and a damaged file costs only that client its reclaim. An
// append log would need compaction, and one torn record would cast doubt
// on every record after it.

// recordPrefix starts a record's file name; the rest is a hash of the
// client owner, which may hold any bytes.
const recordPrefix = "client-"

// recordMagic starts a record file: the format's name and version.
var recordMagic = [4]byte{'H', 'C', 'R', '1'}

// clientRecords is the directory of records.
type clientRecords struct {
	dir string
	log logr.Logger

	// mu serialises changes of the files; it is taken before
	// clientTable.mu, so a change decided under that lock is applied in
	// the order decided (see Handler.syncRecord).
	mu     sync.Mutex
	onDisk map[string]bool // owners with a record file
}

// openRecords reads the records in dir (creating it if need be) and
// returns the owners they name. A record that does not decode is logged
// and removed: it can only cost its client the reclaim of its state, and
// keeping it would make every later start wait for a client nobody can
// recognise.
func openRecords(dir string, log logr.Logger) (*clientRecords, []string, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, nil, fmt.Errorf("client records: %w", err)
	}
	if err := fileutil.RemoveTemps(dir); err != nil {
		return nil, nil, fmt.Errorf("client records: %w", err)
	}
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, nil, fmt.Errorf("client records: %w", err)
	}
	r := &clientRecords{dir: dir, log: log, onDisk: make(map[string]bool)}
	var owners []string
	removed := false
	for _, e := range ents {
		if !strings.HasPrefix(e.Name(), recordPrefix) {
			continue
		}
		p := filepath.Join(dir, e.Name())
		b, err := os.ReadFile(p)
		var owner string
		if err == nil {
			owner, err = decodeRecord(b)
		}
		if err == nil && recordName(owner) != e.Name() {
			err = errors.New("record of another client (renamed?)")
		}
		if err != nil {
			log.Error(err, "NFSv4 client record unreadable: removed; that client cannot reclaim its state", "file", p)
			if err := os.Remove(p); err != nil && !errors.Is(err, os.ErrNotExist) {
				return nil, nil, fmt.Errorf("removing bad client record: %w", err)
			}
			removed = true
			continue
		}
		r.onDisk[owner] = true
		owners = append(owners, owner)
	}
	if removed {
		if err := fileutil.SyncDir(dir); err != nil {
			return nil, nil, err
		}
	}
	return r, owners, nil
}

func recordName(owner string) string {
	sum := sha256.Sum256([]byte(owner))
	return recordPrefix + hex.EncodeToString(sum[:16])
}

// encodeRecord is magic | owner length (4) | owner | CRC-32C of the rest.
func encodeRecord(owner string) []byte {
	b := make([]byte, 0, 12+len(owner))
	b = append(b, recordMagic[:]...)
	b = binary.BigEndian.AppendUint32(b, uint32(len(owner)))
	b = append(b, owner...)
	return binary.BigEndian.AppendUint32(b, crc32.Checksum(b, castagnoli))
}

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

func decodeRecord(b []byte) (string, error) {
	if len(b) < 12 || [4]byte(b[:4]) != recordMagic {
		return "", errors.New("not a client record")
	}
	n := binary.BigEndian.Uint32(b[4:])
	if n == 0 || n > maxOpaque || int(n) != len(b)-12 {
		return "", fmt.Errorf("client record of %d bytes says its owner has %d", len(b), n)
	}
	body := b[:len(b)-4]
	if crc32.Checksum(body, castagnoli) != binary.BigEndian.Uint32(b[len(b)-4:]) {
		return "", errors.New("client record checksum mismatch")
	}
	return string(b[8 : 8+n]), nil
}

// setLocked makes owner's record exist (want) or not; r.mu is held.
func (r *clientRecords) setLocked(owner string, want bool) error {
	if r.onDisk[owner] == want {
		return nil
	}
	p := filepath.Join(r.dir, recordName(owner))
	if want {
		if err := fileutil.WriteFileAtomic(p, encodeRecord(owner), 0o600); err != nil {
			return fmt.Errorf("client record: %w", err)
		}
		r.onDisk[owner] = true
		return nil
	}
	if err := os.Remove(p); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("client record: %w", err)
	}
	if err := fileutil.SyncDir(r.dir); err != nil {
		return fmt.Errorf("client record: %w", err)
	}
	delete(r.onDisk, owner)
	return nil
}

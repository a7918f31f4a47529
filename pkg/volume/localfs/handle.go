package localfs

import (
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"hash"
	"sync"
	"unsafe"

	"github.com/hangar-csi/hangar/pkg/vfs"
)

// A file handle is
//
//	version (1) | volume tag (8) | kernel handle type (1) | kernel handle (n) | MAC (16)
//
// The kernel handle is what name_to_handle_at returns (ext4: 8 bytes, tmpfs:
// 12); it survives renames and restarts and goes stale when the inode is
// freed, because it embeds the inode's generation number. The MAC, a
// truncated HMAC-SHA256 over everything before it, makes handles
// unforgeable: without the server key a client cannot name an inode we did
// not hand out, nor move a handle to another volume by swapping the tag.
const (
	handleVersion = 1
	tagLen        = 8
	macLen        = 16
	headerLen     = 1 + tagLen + 1
	// maxKernelHandle is what is left of the NFSv3 limit for the kernel's
	// handle bytes.
	maxKernelHandle = vfs.MaxHandleSize - headerLen - macLen
)

type tag [tagLen]byte

// keys holds the subkeys derived from the server key. Deriving separate keys
// keeps the volume tags, which clients see, independent of the MAC key.
type keys struct {
	macPool sync.Pool // of *macState
	tagKey  []byte
}

type macState struct {
	h   hash.Hash
	sum [sha256.Size]byte
}

func newKeys(master []byte) *keys {
	macKey := derive(master, "hangar handle mac v1")
	k := &keys{tagKey: derive(master, "hangar volume tag v1")}
	k.macPool.New = func() any {
		return &macState{h: hmac.New(sha256.New, macKey)}
	}
	return k
}

func derive(master []byte, label string) []byte {
	m := hmac.New(sha256.New, master)
	m.Write([]byte(label))
	return m.Sum(nil)
}

// volumeTag is the tag baked into every handle of the volume volumeID.
func (k *keys) volumeTag(volumeID string) tag {
	m := hmac.New(sha256.New, k.tagKey)
	m.Write([]byte(volumeID))
	var t tag
	copy(t[:], m.Sum(nil))
	return t
}

// mac computes the MAC of msg into out (macLen bytes).
func (k *keys) mac(out, msg []byte) {
	s := k.macPool.Get().(*macState)
	s.h.Reset()
	s.h.Write(msg)
	copy(out, s.h.Sum(s.sum[:0]))
	k.macPool.Put(s)
}

// encodeHandle builds the handle for kernel handle (ktype, kfh) in the volume
// tagged t.
func (k *keys) encodeHandle(t tag, ktype int32, kfh []byte) (vfs.Handle, error) {
	if ktype < 0 || ktype > 0xff || len(kfh) == 0 || len(kfh) > maxKernelHandle {
		// Filesystems with handles this large cannot be exported over NFSv3
		// with our layout; refuse rather than truncate.
		return nil, errKernelHandle
	}
	h := make(vfs.Handle, headerLen+len(kfh)+macLen)
	h[0] = handleVersion
	copy(h[1:], t[:])
	h[1+tagLen] = byte(ktype)
	copy(h[headerLen:], kfh)
	body := len(h) - macLen
	k.mac(h[body:], h[:body])
	return h, nil
}

// encodeKey is encodeHandle as a string, in one allocation.
func (k *keys) encodeKey(t tag, ktype int32, kfh []byte) (string, error) {
	h, err := k.encodeHandle(t, ktype, kfh)
	if err != nil {
		return "", err
	}
	// Nothing else refers to h, and nothing writes it again.
	return unsafe.String(&h[0], len(h)), nil
}

// decodeHandle checks h's MAC and splits it. It never looks at the contents
// before the MAC has been verified, so every forged or damaged handle is
// rejected the same way, with vfs.ErrBadHandle.
func (k *keys) decodeHandle(h vfs.Handle) (t tag, ktype int32, kfh []byte, err error) {
	if len(h) < headerLen+1+macLen || len(h) > vfs.MaxHandleSize {
		return t, 0, nil, vfs.ErrBadHandle
	}
	body := len(h) - macLen
	var want [macLen]byte
	k.mac(want[:], h[:body])
	if subtle.ConstantTimeCompare(want[:], h[body:]) != 1 {
		return t, 0, nil, vfs.ErrBadHandle
	}
	if h[0] != handleVersion {
		return t, 0, nil, vfs.ErrBadHandle
	}
	copy(t[:], h[1:1+tagLen])
	return t, int32(h[1+tagLen]), h[headerLen:body], nil
}

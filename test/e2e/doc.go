// Package e2e tests Hangar with the real Linux kernel NFS client: every case
// boots one or more QEMU (TCG) guests running Debian's cloud kernel from a
// busybox initramfs, with Hangar's servers on the host or inside the guest.
//
// Run with `go test ./test/e2e/...`. HANGAR_E2E selects the cases: "quick"
// (the default) or "all". HANGAR_E2E_CACHE (default <repo>/.cache/e2e) holds
// the kernel, initramfs, built binaries and every case's logs; HANGAR_BIN
// points at a prebuilt static hangar binary instead of building one.
// The first run installs the Debian packages it needs with apt-get (root).
package e2e

// Command gonfs is the upstream go-nfs v0.0.4 baseline for the Hangar
// benchmark: the library's example server (NewNullAuthHandler +
// NewCachingHandler over go-billy osfs), built in its own module so that it can
// pin a go-nfs-client with the pipelining fix (commit 801f10d) without touching
// Hangar's go.mod.
package main

import (
	"flag"
	"log"
	"net"

	"github.com/go-git/go-billy/v5/osfs"
	nfs "github.com/willscott/go-nfs"
	nfshelper "github.com/willscott/go-nfs/helpers"
)

func main() {
	root := flag.String("root", "", "directory to export")
	listen := flag.String("listen", "127.0.0.1:0", "address to listen on")
	// The example uses 1024; the benchmark keeps many more handles live, and an
	// evicted handle answers NFS3ERR_STALE, so give the cache room.
	handles := flag.Int("handles", 2_000_000, "handle cache size")
	flag.Parse()
	if *root == "" {
		log.Fatal("gonfs: -root is required")
	}
	l, err := net.Listen("tcp", *listen)
	if err != nil {
		log.Fatalf("gonfs: listen: %v", err)
	}
	log.Printf("gonfs: serving %s on %s", *root, l.Addr())
	h := nfshelper.NewCachingHandler(nfshelper.NewNullAuthHandler(osfs.New(*root)), *handles)
	if err := nfs.Serve(l, h); err != nil {
		log.Fatalf("gonfs: serve: %v", err)
	}
}

// Command etcd runs the etcd server; etcd's own module can't be installed with
// `go install` because of its replace lines.
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() { etcdmain.Main(os.Args) }

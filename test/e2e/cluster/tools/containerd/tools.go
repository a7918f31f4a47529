//go:build tools

// Package tools pins the container runtime of the cluster suite's nodes:
// containerd 2.x (kubelet after 1.35 needs it), its ctr client and the runc
// shim; see test/e2e/cluster/build.sh.
package tools

import (
	_ "github.com/containerd/containerd/v2/cmd/containerd"
	_ "github.com/containerd/containerd/v2/cmd/containerd-shim-runc-v2"
	_ "github.com/containerd/containerd/v2/cmd/ctr"
)

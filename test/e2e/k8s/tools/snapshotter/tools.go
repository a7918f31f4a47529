//go:build tools

// Package tools pins csi-snapshotter and snapshot-controller (and, through
// the client module, the snapshot CRDs the suite installs). Their own
// module: external-snapshotter's go.mod replaces its client module with a
// local directory, so it is pinned here to the same version instead.
package tools

import (
	_ "github.com/kubernetes-csi/external-snapshotter/v8/cmd/csi-snapshotter"
	_ "github.com/kubernetes-csi/external-snapshotter/v8/cmd/snapshot-controller"
)

//go:build tools

// Package tools pins csi-provisioner, which needs its own module (see go.mod).
package tools

import _ "github.com/kubernetes-csi/external-provisioner/v6/cmd/csi-provisioner"

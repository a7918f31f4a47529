//go:build tools

// Package tools pins the Kubernetes control-plane and CSI sidecar commands the
// e2e suite in test/e2e/k8s builds; see build.sh.
package tools

import (
	_ "github.com/kubernetes-csi/external-attacher/v4/cmd/csi-attacher"
	_ "k8s.io/kubernetes/cmd/kube-apiserver"
	_ "k8s.io/kubernetes/cmd/kube-controller-manager"
	_ "k8s.io/kubernetes/cmd/kubectl"
)

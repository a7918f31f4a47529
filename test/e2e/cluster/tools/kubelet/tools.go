//go:build tools

// Package tools pins the kubelet the cluster suite's nodes run (the same
// Kubernetes version as the control plane in test/e2e/k8s/tools); see
// test/e2e/cluster/build.sh.
package tools

import (
	_ "k8s.io/kubernetes/cmd/kubelet"
)

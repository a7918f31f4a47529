//go:build tools

// Package tools pins the kubelet the cluster suite's nodes run and the kube-scheduler that places their pods (the same
// Kubernetes version as the control plane in test/e2e/k8s/tools); see
// test/e2e/cluster/build.sh.
package tools

import (
	_ "k8s.io/kubernetes/cmd/kube-scheduler"
	_ "k8s.io/kubernetes/cmd/kubelet"
)

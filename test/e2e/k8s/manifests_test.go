package k8s

import (
	"fmt"
	"net"
)

var netDialer net.Dialer

func pvc(name, class, mode, size string) string {
	return fmt.Sprintf(`apiVersion: v1
kind: PersistentVolumeClaim
metadata: {name: %s, namespace: e2e}
spec:
  accessModes: [%s]
  storageClassName: %s
  resources: {requests: {storage: %s}}
`, name, mode, class, size)
}

func storageClass(name, param string) string {
	return fmt.Sprintf(`apiVersion: storage.k8s.io/v1
kind: StorageClass
metadata: {name: %s}
provisioner: nfs.hangar.dev
reclaimPolicy: Delete
allowVolumeExpansion: true
parameters:
  %s
`, name, param)
}

// The StatefulSet controller creates the claims of a Parallel StatefulSet
// at once, kubelet or not.
const statefulSet = `apiVersion: apps/v1
kind: StatefulSet
metadata: {name: web, namespace: e2e}
spec:
  serviceName: web
  replicas: 3
  podManagementPolicy: Parallel
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers:
        - {name: web, image: busybox:1.37, volumeMounts: [{name: data, mountPath: /data}]}
  volumeClaimTemplates:
    - metadata: {name: data}
      spec:
        accessModes: [ReadWriteOnce]
        storageClassName: hangar
        resources: {requests: {storage: 1Gi}}
`

// A Node and the CSINode node-driver-registrar would have registered on
// it (format: the node ID).
const nodeYAML = `apiVersion: v1
kind: Node
metadata: {name: node-a, labels: {kubernetes.io/hostname: node-a}}
---
apiVersion: storage.k8s.io/v1
kind: CSINode
metadata: {name: node-a}
spec:
  drivers:
    - {name: nfs.hangar.dev, nodeID: "%s", topologyKeys: null}
`

// What the attach/detach controller creates for a pod on node-a (format:
// the PV name).
const attachmentYAML = `apiVersion: storage.k8s.io/v1
kind: VolumeAttachment
metadata: {name: va-rwo}
spec:
  attacher: nfs.hangar.dev
  nodeName: node-a
  source: {persistentVolumeName: %s}
`

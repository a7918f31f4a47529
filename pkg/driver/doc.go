// Package driver implements Hangar's CSI plugin services, one per file:
// Identity, the stateless Controller that routes calls to storage servers
// by volume ID, and the Node plugin that mounts volumes over NFS. The
// storage servers' side of the Controller service is pkg/server/api; what
// both sides agree on (IDs, volume context, parameters, validation) is
// pkg/csicommon.
package driver

package e2e

// Case 6 — quota and identity — is reserved for a later issue; there is
// deliberately no test function yet. The plan, using the pieces above:
//
//   - startHostServer + createVolume with a small CapacityRange;
//   - a guest script (guest/quota.sh) that publishes the volume via
//     `hangar node`, checks df/statfs against the requested size, writes
//     past it expecting EDQUOT/ENOSPC, and checks uid/gid handling
//     (files created as a non-root uid keep it; root squash if configured);
//   - host-side checks of ownership in the server's data dir (hostFileSHA's
//     walk finds the files).
//
// Name it TestQuotaIdentity and add it to the HANGAR_E2E=all set.

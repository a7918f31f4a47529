#!/usr/bin/env bash
# Create the CA and the mutual-TLS certificates of Hangar's management API
# as two Secrets (hangar-server-tls, hangar-controller-tls), for
# deploy/hangar.yaml. (The Helm chart does this itself.)
#
#   NAMESPACE (default hangar)   DAYS (default 3650)   KUBECTL (default kubectl)
set -euo pipefail
ns=${NAMESPACE:-hangar}; days=${DAYS:-3650}; kubectl=${KUBECTL:-kubectl}
d=$(mktemp -d); trap 'rm -rf "$d"' EXIT
o() { openssl "$@" 2>/dev/null; }
o req -x509 -newkey rsa:2048 -nodes -keyout "$d/ca.key" -out "$d/ca.crt" -days "$days" -subj /CN=hangar-ca
for who in server controller; do
  o req -newkey rsa:2048 -nodes -keyout "$d/$who.key" -out "$d/$who.csr" -subj "/CN=hangar-$who"
  o x509 -req -in "$d/$who.csr" -CA "$d/ca.crt" -CAkey "$d/ca.key" -CAcreateserial -days "$days" -out "$d/$who.crt" \
    -extfile <(printf 'subjectAltName=DNS:hangar-server\nextendedKeyUsage=serverAuth,clientAuth\n')
  "$kubectl" -n "$ns" create secret generic "hangar-$who-tls" --type=kubernetes.io/tls \
    --from-file=tls.crt="$d/$who.crt" --from-file=tls.key="$d/$who.key" --from-file=ca.crt="$d/ca.crt" \
    --dry-run=client -o yaml | "$kubectl" apply -f -
done
echo "created secrets hangar-server-tls and hangar-controller-tls in namespace $ns (CA key discarded)"

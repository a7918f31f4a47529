package server

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"math/big"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/container-storage-interface/spec/lib/go/csi"
	"github.com/go-logr/logr"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	"github.com/hangar-csi/hangar/pkg/csicommon"
	"github.com/hangar-csi/hangar/pkg/driver"
	"github.com/hangar-csi/hangar/pkg/nfs/mount"
	"github.com/hangar-csi/hangar/pkg/nfs/nfsclient"
)

// testPKI writes a CA and certificates signed by it into dir, as the Helm
// chart does: a server certificate naming DefaultTLSServerName, a client
// certificate, and a second, unrelated CA's client certificate.
type testPKI struct{ dir string }

func writePEM(t *testing.T, p, typ string, der []byte) {
	t.Helper()
	if err := os.WriteFile(p, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
}

func newCA(t *testing.T, dir, name string) (*x509.Certificate, *ecdsa.PrivateKey) {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	writePEM(t, filepath.Join(dir, name+".crt"), "CERTIFICATE", der)
	cert, _ := x509.ParseCertificate(der)
	return cert, key
}

func issue(t *testing.T, dir, name string, ca *x509.Certificate, caKey *ecdsa.PrivateKey, dns ...string) {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: name}, DNSNames: dns,
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	writePEM(t, filepath.Join(dir, name+".crt"), "CERTIFICATE", der)
	kder, _ := x509.MarshalPKCS8PrivateKey(key)
	writePEM(t, filepath.Join(dir, name+".key"), "PRIVATE KEY", kder)
}

func newPKI(t *testing.T) testPKI {
	dir := t.TempDir()
	ca, caKey := newCA(t, dir, "ca")
	issue(t, dir, "server", ca, caKey, DefaultTLSServerName)
	issue(t, dir, "controller", ca, caKey)
	other, otherKey := newCA(t, dir, "other-ca")
	issue(t, dir, "intruder", other, otherKey)
	return testPKI{dir}
}

func (p testPKI) file(name string) string { return filepath.Join(p.dir, name) }

func (p testPKI) client(t *testing.T, name string) grpc.DialOption {
	t.Helper()
	conf, err := ClientTLS(p.file("ca.crt"), p.file(name+".crt"), p.file(name+".key"), "")
	if err != nil {
		t.Fatal(err)
	}
	return grpc.WithTransportCredentials(credentials.NewTLS(conf))
}

// startSecure runs a storage server with mutual TLS and access control,
// and a controller routed to it.
func startSecure(t *testing.T, pki testPKI, dir string) (*Server, *driver.Controller, func()) {
	t.Helper()
	conf, err := ServerTLS(pki.file("ca.crt"), pki.file("server.crt"), pki.file("server.key"))
	if err != nil {
		t.Fatal(err)
	}
	srv, err := New(Options{DataDir: dir, Name: "s1", NFSListen: "127.0.0.1:0", APIListen: "127.0.0.1:0", Log: logr.Discard(), AccessControl: true, TLS: conf})
	if err != nil {
		t.Fatal(err)
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve() }()
	ctrl, err := driver.NewController([]driver.ServerRef{{Name: "s1", Addr: srv.APIAddr()}}, logr.Discard(), pki.client(t, "controller"))
	if err != nil {
		t.Fatal(err)
	}
	return srv, ctrl, func() {
		ctrl.Close()
		srv.Close()
		if err := <-errc; err != nil {
			t.Errorf("Serve: %v", err)
		}
	}
}

var rwo = &csi.VolumeCapability{
	AccessType: &csi.VolumeCapability_Mount{Mount: &csi.VolumeCapability_MountVolume{}},
	AccessMode: &csi.VolumeCapability_AccessMode{Mode: csi.VolumeCapability_AccessMode_SINGLE_NODE_WRITER},
}

// mountStatus MOUNTs export from 127.0.0.1 over the wire and returns the
// MOUNT status (0 = allowed).
func mountStatus(t *testing.T, addr, export string) uint32 {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := nfsclient.Dial(ctx, addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_, err = c.Mount(ctx, export)
	var se *nfsclient.StatusError
	switch {
	case err == nil:
		return mount.StatusOK
	case errors.As(err, &se):
		return se.Status
	}
	t.Fatalf("MOUNT %s: %v", export, err)
	return 0
}

// TestPublishControlsMount proves over the wire that a node without a
// publication for a volume is refused at MOUNT (MNT3ERR_ACCES), that
// ControllerPublishVolume admits exactly the published node's address,
// that publications survive a server restart, and that unpublishing
// revokes them.
func TestPublishControlsMount(t *testing.T) {
	ctx := context.Background()
	pki := newPKI(t)
	dir := t.TempDir()
	srv, ctrl, stop := startSecure(t, pki, dir)

	vol, err := ctrl.CreateVolume(ctx, &csi.CreateVolumeRequest{Name: "pvc-1", VolumeCapabilities: []*csi.VolumeCapability{rwo}})
	if err != nil {
		t.Fatal(err)
	}
	vid, export := vol.Volume.VolumeId, vol.Volume.VolumeContext[csicommon.ContextExport]
	nfsAddr := srv.NFSListenAddr()
	if st := mountStatus(t, nfsAddr, export); st != mount.StatusAcces {
		t.Fatalf("MOUNT before any publish: status %d, want MNT3ERR_ACCES (%d)", st, mount.StatusAcces)
	}

	// Published to another node only: 127.0.0.1 is still refused.
	other := "node-b@192.0.2.7"
	if _, err := ctrl.ControllerPublishVolume(ctx, &csi.ControllerPublishVolumeRequest{VolumeId: vid, NodeId: other, VolumeCapability: rwo}); err != nil {
		t.Fatal(err)
	}
	if st := mountStatus(t, nfsAddr, export); st != mount.StatusAcces {
		t.Fatalf("MOUNT from an unpublished node: status %d, want MNT3ERR_ACCES", st)
	}
	// RWO: a second node is refused while the first holds it.
	local := "node-a@127.0.0.1"
	_, err = ctrl.ControllerPublishVolume(ctx, &csi.ControllerPublishVolumeRequest{VolumeId: vid, NodeId: local, VolumeCapability: rwo})
	if status.Code(err) != codes.FailedPrecondition {
		t.Fatalf("publishing an RWO volume to a second node: %v, want FailedPrecondition", err)
	}
	if _, err := ctrl.ControllerUnpublishVolume(ctx, &csi.ControllerUnpublishVolumeRequest{VolumeId: vid, NodeId: other}); err != nil {
		t.Fatal(err)
	}
	if _, err := ctrl.ControllerPublishVolume(ctx, &csi.ControllerPublishVolumeRequest{VolumeId: vid, NodeId: local, VolumeCapability: rwo}); err != nil {
		t.Fatal(err)
	}
	if st := mountStatus(t, nfsAddr, export); st != mount.StatusOK {
		t.Fatalf("MOUNT from the published node: status %d, want OK", st)
	}

	// The publication survives a restart.
	stop()
	srv, ctrl, stop = startSecure(t, pki, dir)
	defer func() { stop() }()
	nfsAddr = srv.NFSListenAddr()
	if st := mountStatus(t, nfsAddr, export); st != mount.StatusOK {
		t.Fatalf("MOUNT from the published node after restart: status %d, want OK", st)
	}
	if _, err := ctrl.ControllerUnpublishVolume(ctx, &csi.ControllerUnpublishVolumeRequest{VolumeId: vid, NodeId: local}); err != nil {
		t.Fatal(err)
	}
	if st := mountStatus(t, nfsAddr, export); st != mount.StatusAcces {
		t.Fatalf("MOUNT after unpublish: status %d, want MNT3ERR_ACCES", st)
	}
	// Unpublishing again, and unpublishing a deleted volume, succeed.
	if _, err := ctrl.ControllerUnpublishVolume(ctx, &csi.ControllerUnpublishVolumeRequest{VolumeId: vid, NodeId: local}); err != nil {
		t.Fatal(err)
	}
	if _, err := ctrl.ControllerPublishVolume(ctx, &csi.ControllerPublishVolumeRequest{VolumeId: vid, NodeId: local, VolumeCapability: rwo}); err != nil {
		t.Fatal(err)
	}
	if _, err := ctrl.DeleteVolume(ctx, &csi.DeleteVolumeRequest{VolumeId: vid}); err != nil {
		t.Fatal(err)
	}
	if _, err := ctrl.ControllerUnpublishVolume(ctx, &csi.ControllerUnpublishVolumeRequest{VolumeId: vid, NodeId: local}); err != nil {
		t.Fatal(err)
	}
	if ents, _ := os.ReadDir(filepath.Join(dir, "access")); len(ents) != 0 {
		t.Errorf("access lists left after the volume was deleted: %v", ents)
	}
}

// TestManagementAPIRequiresClientCert checks the API refuses clients
// without a certificate, with one from another CA, and without TLS.
func TestManagementAPIRequiresClientCert(t *testing.T) {
	pki := newPKI(t)
	srv, _, stop := startSecure(t, pki, t.TempDir())
	defer stop()
	noCert, err := ClientTLS(pki.file("ca.crt"), pki.file("controller.crt"), pki.file("controller.key"), "")
	if err != nil {
		t.Fatal(err)
	}
	noCert.Certificates = nil
	for name, opt := range map[string]grpc.DialOption{
		"no TLS":               grpc.WithTransportCredentials(insecure.NewCredentials()),
		"no client cert":       grpc.WithTransportCredentials(credentials.NewTLS(noCert)),
		"cert of another CA":   pki.client(t, "intruder"),
		"valid (control case)": pki.client(t, "controller"),
	} {
		cc, err := grpc.NewClient("passthrough:///"+srv.APIAddr(), opt)
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		_, err = csi.NewControllerClient(cc).ListVolumes(ctx, &csi.ListVolumesRequest{})
		cancel()
		cc.Close()
		if name == "valid (control case)" {
			if err != nil {
				t.Errorf("%s: %v", name, err)
			}
		} else if err == nil {
			t.Errorf("%s: ListVolumes succeeded, want refused", name)
		}
	}
}

// TestServerNameInPluginInfo checks a server tells its name to controllers
// that discover it by address.
func TestServerNameInPluginInfo(t *testing.T) {
	pki := newPKI(t)
	srv, _, stop := startSecure(t, pki, t.TempDir())
	defer stop()
	cc, err := grpc.NewClient("passthrough:///"+srv.APIAddr(), pki.client(t, "controller"))
	if err != nil {
		t.Fatal(err)
	}
	defer cc.Close()
	info, err := csi.NewIdentityClient(cc).GetPluginInfo(context.Background(), &csi.GetPluginInfoRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if got := info.GetManifest()[csicommon.ManifestServer]; got != "s1" {
		t.Fatalf("manifest %v, want %s=s1", info.GetManifest(), csicommon.ManifestServer)
	}
}

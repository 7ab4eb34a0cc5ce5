package bus

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"log/slog"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
)

// certs writes a CA, a server certificate for 127.0.0.1 and a client
// certificate, all signed by the CA, and returns their file names.
func certs(t *testing.T) (ca, srvCert, srvKey, cliCert, cliKey string) {
	t.Helper()
	dir := t.TempDir()
	write := func(name, typ string, der []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "hmd test ca"}, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	caCert, _ := x509.ParseCertificate(caDER)
	ca = write("ca.pem", "CERTIFICATE", caDER)
	leaf := func(name string, serial int64, usage x509.ExtKeyUsage) (string, string) {
		k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		tmpl := &x509.Certificate{SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: name}, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
			KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{usage}, IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, caCert, &k.PublicKey, caKey)
		if err != nil {
			t.Fatal(err)
		}
		kder, _ := x509.MarshalECPrivateKey(k)
		return write(name+".pem", "CERTIFICATE", der), write(name+"-key.pem", "EC PRIVATE KEY", kder)
	}
	srvCert, srvKey = leaf("server", 2, x509.ExtKeyUsageServerAuth)
	cliCert, cliKey = leaf("client", 3, x509.ExtKeyUsageClientAuth)
	return
}

// The listener speaks TLS: a client with the CA (and, when the listener
// verifies clients, its certificate) connects; one without TLS, or
// without a client certificate, is refused.
func TestListenerTLS(t *testing.T) {
	ca, sc, sk, cc, ck := certs(t)
	for _, verify := range []bool{false, true} {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		addr := freeAddr(t)
		o := Options{DataDir: t.TempDir(), Listen: addr, User: "healer", Password: "hp", ReaderUser: "reader", ReaderPassword: "rp",
			TLS: TLS{Cert: sc, Key: sk}, Logger: slog.New(slog.DiscardHandler)}
		if verify {
			o.TLS.CA = ca
		}
		b, err := Open(ctx, o)
		if err != nil {
			t.Fatal(err)
		}
		url := "nats://" + addr
		log := slog.New(slog.DiscardHandler)
		nc, err := Connect(url, "reader", "rp", "", "test", TLS{CA: ca, Cert: cc, Key: ck}, log)
		if err != nil {
			t.Errorf("verify=%v: a TLS client with the CA and a certificate: %v", verify, err)
		} else {
			if !nc.TLSRequired() {
				t.Errorf("verify=%v: the connection is not TLS", verify)
			}
			nc.Close()
		}
		if nc, err := nats.Connect(url, nats.UserInfo("reader", "rp"), nats.MaxReconnects(0), nats.Timeout(2*time.Second)); err == nil {
			nc.Close()
			t.Errorf("verify=%v: a client without TLS connected", verify)
		}
		if nc, err := nats.Connect(url, nats.UserInfo("reader", "rp"), nats.Secure(), nats.MaxReconnects(0), nats.Timeout(2*time.Second)); err == nil {
			nc.Close()
			t.Errorf("verify=%v: a client that does not know the CA connected", verify)
		}
		nc, err = nats.Connect(url, nats.UserInfo("reader", "rp"), nats.RootCAs(ca), nats.MaxReconnects(0), nats.Timeout(2*time.Second))
		switch {
		case verify && err == nil:
			nc.Close()
			t.Error("a client without a certificate connected to a listener that verifies clients")
		case !verify && err != nil:
			t.Errorf("a client with the CA: %v", err)
		case err == nil:
			nc.Close()
		}
		_ = b.Close()
		cancel()
	}
}

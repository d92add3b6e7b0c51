package telemetry

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"math/big"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/anytime-edge/edge/internal/testkit"
	"github.com/anytime-edge/edge/telemetry/broker"
	"github.com/anytime-edge/edge/telemetry/mqtt"
)

// testPKI is a CA with a server certificate for 127.0.0.1 and a client
// certificate, written as PEM files.
type testPKI struct {
	dir                       string
	ca, serverCert, serverKey string
	clientCert, clientKey     string
	pool                      *x509.CertPool
	server                    tls.Certificate
}

func newPKI(t *testing.T, dir, name string) *testPKI {
	t.Helper()
	p := &testPKI{dir: dir}
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: name + " test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), IsCA: true,
		KeyUsage: x509.KeyUsageCertSign, BasicConstraintsValid: true}
	caKey, caDER := issue(t, caTmpl, nil, nil)
	caCert, err := x509.ParseCertificate(caDER)
	if err != nil {
		t.Fatal(err)
	}
	p.pool = x509.NewCertPool()
	p.pool.AddCert(caCert)
	p.ca = p.write(t, name+"-ca.pem", "CERTIFICATE", caDER)
	leaf := func(serial int64, cn string, usage x509.ExtKeyUsage, ips []net.IP) (string, string, tls.Certificate) {
		tmpl := &x509.Certificate{SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: cn},
			NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
			KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{usage}, IPAddresses: ips}
		k, der := issue(t, tmpl, caCert, caKey)
		kb, err := x509.MarshalECPrivateKey(k)
		if err != nil {
			t.Fatal(err)
		}
		c := p.write(t, name+"-"+cn+".pem", "CERTIFICATE", der)
		kf := p.write(t, name+"-"+cn+"-key.pem", "EC PRIVATE KEY", kb)
		pair, err := tls.LoadX509KeyPair(c, kf)
		if err != nil {
			t.Fatal(err)
		}
		return c, kf, pair
	}
	p.serverCert, p.serverKey, p.server = leaf(2, "broker", x509.ExtKeyUsageServerAuth, []net.IP{net.ParseIP("127.0.0.1")})
	p.clientCert, p.clientKey, _ = leaf(3, "drone-7", x509.ExtKeyUsageClientAuth, nil)
	return p
}

// issue makes a P-256 key and a certificate for it from tmpl, signed by
// parent's key (self-signed with a nil parent), and returns both.
func issue(t *testing.T, tmpl, parent *x509.Certificate, parentKey *ecdsa.PrivateKey) (*ecdsa.PrivateKey, []byte) {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	if parent == nil {
		parent, parentKey = tmpl, k
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, &k.PublicKey, parentKey)
	if err != nil {
		t.Fatal(err)
	}
	return k, der
}

// write writes der as a PEM block of type typ to name in p's directory.
func (p *testPKI) write(t *testing.T, name, typ string, der []byte) string {
	t.Helper()
	return testkit.WriteFile(t, filepath.Join(p.dir, name), pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}))
}

// TestTLS: mqtts:// with a CA file and a client certificate connects to a
// broker that requires client certificates; a wrong CA or a missing client
// certificate does not.
func TestTLS(t *testing.T) {
	dir := t.TempDir()
	good := newPKI(t, dir, "good")
	other := newPKI(t, dir, "other")
	log, _ := testLogger()
	b, err := broker.Start(broker.Config{Listen: "127.0.0.1:0", Log: log, TLS: &tls.Config{
		Certificates: []tls.Certificate{good.server}, ClientCAs: good.pool,
		ClientAuth: tls.RequireAndVerifyClientCert, MinVersion: tls.VersionTLS12,
	}})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	url := "mqtts://" + b.Addr()
	tests := []struct {
		name          string
		ca, cert, key string
		ok            bool
		errPart       string
	}{
		{"CA and client certificate", good.ca, good.clientCert, good.clientKey, true, ""},
		{"wrong CA", other.ca, good.clientCert, good.clientKey, false, "certificate signed by unknown authority"},
		{"no client certificate", good.ca, "", "", false, ""},
		{"client certificate of another CA", good.ca, other.clientCert, other.clientKey, false, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg := testConfig(t, url)
			cfg.CAFile, cfg.CertFile, cfg.KeyFile = tc.ca, tc.cert, tc.key
			p, err := New(context.Background(), cfg, nil, log)
			if err != nil {
				t.Fatal(err)
			}
			defer closePublisher(t, p)
			wait := 5 * time.Second
			if !tc.ok {
				wait = 1500 * time.Millisecond // the first attempt fails at once
			}
			ctx, cancel := context.WithTimeout(context.Background(), wait)
			defer cancel()
			err = p.WaitConnected(ctx)
			if tc.ok {
				if err != nil {
					t.Fatalf("WaitConnected: %v", err)
				}
				return
			}
			if !errors.Is(err, mqtt.ErrNotConnected) || !strings.Contains(err.Error(), tc.errPart) {
				t.Fatalf("WaitConnected err = %v, want not connected (%q)", err, tc.errPart)
			}
		})
	}
}

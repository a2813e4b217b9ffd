package console

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/edgehook/edgehook/console/consoletest"
)

// selfSigned returns a certificate and key for 127.0.0.1 and a pool that trusts it.
func selfSigned(t *testing.T) (certPEM, keyPEM []byte, pool *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "console test"},
		NotBefore:    time.Now().Add(-time.Minute),
		NotAfter:     time.Now().Add(time.Hour),
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1)},
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	pool = x509.NewCertPool()
	pool.AddCert(cert)
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}), pool
}

func TestCookiesAreSecureOverTLS(t *testing.T) {
	portal, err := NewPortal(Config{}, fixture())
	if err != nil {
		t.Fatal(err)
	}
	certPEM, keyPEM, pool := selfSigned(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &fasthttp.Server{Handler: portal.Handler()}
	errc := make(chan error, 1)
	go func() { errc <- srv.ServeTLSEmbed(ln, certPEM, keyPEM) }()
	t.Cleanup(func() {
		if err := srv.Shutdown(); err != nil {
			t.Errorf("shutdown: %v", err)
		}
		<-errc
	})
	c := consoletest.NewClient(t, "https://"+ln.Addr().String())
	c.SetTransport(&http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}})
	form := c.Get("/portal/signin")
	p := c.SignIn("/portal/", "key", keyManageA)
	if p.Status != http.StatusSeeOther {
		t.Fatalf("sign-in over TLS: %d", p.Status)
	}
	for _, answer := range []consoletest.Page{form, p} {
		for _, raw := range answer.Header.Values("Set-Cookie") {
			ck, err := http.ParseSetCookie(raw)
			if err != nil {
				t.Fatal(err)
			}
			if !ck.Secure || !ck.HttpOnly || ck.SameSite != http.SameSiteStrictMode {
				t.Errorf("cookie over TLS: %q, want Secure, HttpOnly, SameSite=Strict", raw)
			}
		}
	}
}

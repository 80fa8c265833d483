package main

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// Redis over TLS with an ACL user and no default user: ferryd connects
// with rediss://, redis.username/password and redis.ca_file, and serves an
// upload. A wrong password, no CA (the system's do not know this one) or
// plain TCP stop it at startup with the cause, so verification and
// authentication are real.
//
//	CI=1 scripts/test.sh -count=1 -v -run TestRedisTLSAndACL ./cmd/ferryd/
func TestRedisTLSAndACL(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	caFile, certFile, keyFile := writeTestPKI(t, dir)
	srv := &daemon{name: "redis-tls", bin: chaosBinary(t, "redis-server"), logPath: filepath.Join(dir, "redis.log"),
		argv: func(port int) ([]string, []string) {
			return []string{"--bind", "127.0.0.1", "--port", "0", "--tls-port", strconv.Itoa(port),
				"--tls-cert-file", certFile, "--tls-key-file", keyFile, "--tls-ca-cert-file", caFile, "--tls-auth-clients", "no",
				"--user", "default", "off", "--user", "ferry", "on", ">s3cret", "~*", "&*", "+@all",
				"--dir", dir, "--save", "", "--appendonly", "no", "--daemonize", "no"}, nil
		}}
	t.Cleanup(func() {
		srv.close()
		if t.Failed() {
			t.Logf("redis log:\n%s", logTail(srv.logPath, 2000))
		}
	})
	if err := srv.startOnFreePort(); err != nil {
		t.Fatal(err)
	}
	_, s3 := s3Env(t)
	env := func(extra ...string) []string {
		return append(append([]string{"FERRY_REDIS_URL=rediss://" + srv.addr() + "/0", "FERRY_REDIS_USERNAME=ferry"}, s3...), extra...)
	}

	p := startFerryd(t, "--data-dir "+t.TempDir(), env("FERRY_REDIS_PASSWORD=s3cret", "FERRY_REDIS_CA_FILE="+caFile)...)
	if code, body := getJSON(t, "http://"+p.addr+"/readyz"); code != 200 {
		t.Fatalf("/readyz over TLS with the ACL user = %d %v", code, body)
	}
	content := randomData(3<<20 + 5)
	id := createSession(t, p, "tls", "a.bin", len(content))["id"].(string)
	if r := sendChunk(t, p, id, 0, content); r.Code != 200 {
		t.Fatalf("append: %d %s", r.Code, r.Body)
	}
	if got := download(t, "http://"+p.addr+"/v1/files/tls/a.bin:content"); !bytes.Equal(got, content) {
		t.Fatal("the upload does not read back byte-exact")
	}

	for _, c := range []struct {
		name, cause string
		extra       []string
	}{
		{"wrong password", "WRONGPASS", []string{"FERRY_REDIS_PASSWORD=nope", "FERRY_REDIS_CA_FILE=" + caFile}},
		{"unknown CA", "certificate", []string{"FERRY_REDIS_PASSWORD=s3cret"}},
		{"no TLS (redis:)", "metadata store", []string{"FERRY_REDIS_PASSWORD=s3cret", "FERRY_REDIS_URL=redis://" + srv.addr() + "/0"}},
	} {
		cmd := exec.Command(os.Args[0], "-test.run=^$")
		cmd.Env = cleanEnv(append(env(c.extra...), "FERRYD_TEST_MAIN=1", "FERRYD_TEST_ARGS=--addr 127.0.0.1:0 --data-dir "+t.TempDir())...)
		out, err := cmd.CombinedOutput()
		if err == nil || !strings.Contains(string(out), c.cause) {
			t.Errorf("%s: ferryd exited with %v, want an error naming %q:\n%s", c.name, err, c.cause, out)
		}
	}
}

// writeTestPKI writes a CA and a certificate for 127.0.0.1 that it signed.
func writeTestPKI(t *testing.T, dir string) (caFile, certFile, keyFile string) {
	t.Helper()
	key := func() *ecdsa.PrivateKey {
		k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		return k
	}
	caKey, srvKey := key(), key()
	now := time.Now()
	ca := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "ferry test CA"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(time.Hour), IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign}
	caDER, err := x509.CreateCertificate(rand.Reader, ca, ca, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	leaf := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "127.0.0.1"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(time.Hour), IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)},
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	leafDER, err := x509.CreateCertificate(rand.Reader, leaf, ca, &srvKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalECPrivateKey(srvKey)
	if err != nil {
		t.Fatal(err)
	}
	write := func(name, typ string, der []byte) string {
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
			t.Fatal(err)
		}
		return path
	}
	return write("ca.pem", "CERTIFICATE", caDER), write("redis.pem", "CERTIFICATE", leafDER), write("redis.key", "EC PRIVATE KEY", keyDER)
}

package main

import (
	"bytes"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pushuphq/pushup/cluster"
)

func TestHealthCheckURL(t *testing.T) {
	for _, tc := range []struct {
		listen, target, tlsCert, want string
	}{
		{":8080", "/healthz/ready", "", "http://127.0.0.1:8080/healthz/ready"},
		{"0.0.0.0:9000", "/healthz/live", "", "http://127.0.0.1:9000/healthz/live"},
		{"[::]:9000", "/healthz", "", "http://[::1]:9000/healthz"},
		{"10.1.2.3:8080", "/healthz/ready", "", "http://10.1.2.3:8080/healthz/ready"},
		{":8443", "/healthz/ready", "c.pem", "https://127.0.0.1:8443/healthz/ready"},
		{":8080", "http://node1:8080/healthz/ready", "", "http://node1:8080/healthz/ready"},
	} {
		got, err := healthCheckURL(config{Listen: tc.listen, HealthCheck: tc.target, TLSCert: tc.tlsCert})
		require.NoError(t, err, "%+v", tc)
		assert.Equal(t, tc.want, got, "%+v", tc)
	}
	for _, bad := range []string{"healthz", "ftp://x/healthz", "http://"} {
		_, err := healthCheckURL(config{Listen: ":8080", HealthCheck: bad})
		assert.Error(t, err, bad)
	}
}

func TestHealthCheckFollowsTheAnswer(t *testing.T) {
	status := http.StatusOK
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		assert.Equal(t, "/healthz/ready", r.URL.Path)
		w.WriteHeader(status)
		w.Write([]byte(`{"status":"x"}`))
	}))
	defer srv.Close()
	_, port, _ := net.SplitHostPort(strings.TrimPrefix(srv.URL, "http://"))

	var out bytes.Buffer
	// A path is asked of -listen, as the container's HEALTHCHECK does.
	require.NoError(t, healthCheck(config{Listen: ":" + port, HealthCheck: "/healthz/ready"}, &out))
	assert.Contains(t, out.String(), `{"status":"x"}`)

	status = http.StatusServiceUnavailable
	err := healthCheck(config{Listen: ":" + port, HealthCheck: srv.URL + "/healthz/ready"}, &out)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "503")

	srv.Close()
	assert.Error(t, healthCheck(config{Listen: ":" + port, HealthCheck: "/healthz/ready"}, &out), "nobody listening")
}

func TestHealthCheckFromEnvironment(t *testing.T) {
	c, err := parseConfig(nil, env(map[string]string{"PUSHUP_HEALTHCHECK": "/healthz/ready", "PUSHUP_LISTEN": ":9090"}), &bytes.Buffer{})
	require.NoError(t, err)
	assert.Equal(t, "/healthz/ready", c.HealthCheck)
	u, err := healthCheckURL(c)
	require.NoError(t, err)
	assert.Equal(t, "http://127.0.0.1:9090/healthz/ready", u)
}

func TestAdvertiseHTTP(t *testing.T) {
	old := privateIP
	t.Cleanup(func() { privateIP = old })
	privateIP = func() (string, error) { return "172.18.0.5", nil }
	all := &net.TCPAddr{IP: net.IPv4zero, Port: 8080}
	lo := &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 18201}
	for _, tc := range []struct {
		name string
		cc   cluster.Config
		addr *net.TCPAddr
		tls  bool
		want string
	}{
		{"explicit", cluster.Config{HTTP: "http://pushup-1:8080", Bind: ":7946"}, all, false, "http://pushup-1:8080"},
		{"listen address", cluster.Config{Bind: ":7946"}, lo, false, "http://127.0.0.1:18201"},
		{"cluster bind host", cluster.Config{Bind: "10.0.0.7:7946"}, all, false, "http://10.0.0.7:8080"},
		{"cluster advertise host", cluster.Config{Bind: ":7946", Advertise: "10.0.0.8:7946"}, all, true, "https://10.0.0.8:8080"},
		{"auto in a container", cluster.Config{HTTP: "auto", Bind: "0.0.0.0:7946"}, all, false, "http://172.18.0.5:8080"},
		{"auto keeps a specific listen address", cluster.Config{HTTP: "auto", Bind: ":7946"}, lo, false, "http://127.0.0.1:18201"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := advertiseHTTP(tc.cc, tc.addr, tc.tls)
			require.NoError(t, err)
			assert.Equal(t, tc.want, got)
		})
	}
	privateIP = func() (string, error) { return "fd00::2", nil }
	got, err := advertiseHTTP(cluster.Config{HTTP: "auto", Bind: ":7946"}, all, false)
	require.NoError(t, err)
	assert.Equal(t, "http://[fd00::2]:8080", got, "an IPv6 private address is bracketed")

	_, err = advertiseHTTP(cluster.Config{Bind: ":7946"}, all, false)
	assert.ErrorContains(t, err, "auto", "the error names the way out")
	privateIP = func() (string, error) { return "", nil }
	_, err = advertiseHTTP(cluster.Config{HTTP: "auto", Bind: ":7946"}, all, false)
	assert.ErrorContains(t, err, "no private address")
}

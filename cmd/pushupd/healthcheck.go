package main

import (
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// healthCheckTimeout bounds one probe: well under Docker's default
// HEALTHCHECK timeout (30 s), so a hung node is reported unhealthy by us
// rather than killed probes piling up.
const healthCheckTimeout = 5 * time.Second

// healthCheck is pushupd -healthcheck: one GET, success on 200. It exists
// because the container image has no shell and no curl. The target is a
// URL, or a path that is asked of this node's own -listen address (on
// loopback when -listen names all interfaces), so the probe follows
// PUSHUP_LISTEN and PUSHUP_TLS_CERT from the same environment as the
// server.
func healthCheck(cfg config, out io.Writer) error {
	target, err := healthCheckURL(cfg)
	if err != nil {
		return err
	}
	client := &http.Client{Timeout: healthCheckTimeout}
	if u, _ := url.Parse(target); u != nil && u.Scheme == "https" && isLoopback(u.Hostname()) {
		// Asking ourselves over loopback: the certificate names the
		// public host, not 127.0.0.1, and there is nobody in between.
		client.Transport = &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}
	}
	resp, err := client.Get(target)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s answered %s: %s", target, resp.Status, strings.TrimSpace(string(body)))
	}
	fmt.Fprintf(out, "%s: %s\n", target, strings.TrimSpace(string(body)))
	return nil
}

// healthCheckURL turns -healthcheck into a URL.
func healthCheckURL(cfg config) (string, error) {
	t := cfg.HealthCheck
	if !strings.HasPrefix(t, "/") {
		u, err := url.Parse(t)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return "", fmt.Errorf("-healthcheck %q: want a URL like http://127.0.0.1:8080/healthz/ready or a path like /healthz/ready", t)
		}
		return t, nil
	}
	host, port, err := net.SplitHostPort(cfg.Listen)
	if err != nil {
		return "", fmt.Errorf("-healthcheck %q: -listen %q: %w", t, cfg.Listen, err)
	}
	if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
		host = "127.0.0.1"
		if ip != nil && ip.To4() == nil {
			host = "::1"
		}
	}
	scheme := "http"
	if cfg.TLSCert != "" {
		scheme = "https"
	}
	return scheme + "://" + net.JoinHostPort(host, port) + t, nil
}

func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

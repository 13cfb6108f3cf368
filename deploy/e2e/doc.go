// Package e2e holds the end-to-end test of a PushUp cluster: three pushupd
// processes behind HAProxy on loopback, in both replication modes, with
// the HAProxy configuration of deploy/haproxy. It has no code outside its
// tests.
//
// The test needs Debian's haproxy (/usr/sbin/haproxy, or $PUSHUP_HAPROXY).
// Without it the test skips, unless PUSHUP_REQUIRE_HAPROXY=1 (as .ci/run
// sets), when it fails.
package e2e

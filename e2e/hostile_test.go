package e2e

import "testing"

// hostileMetricsToken is the --metrics-token of TestHostileTraffic's server.
const hostileMetricsToken = "e2e-metrics-token-0123456789"

// TestHostileTraffic is issue 9's hostile-network findings over the real binary, one after the
// other on one server: a race build makes every bcrypt check slow, so one start and one sign-in
// serve them all. The sign-in race comes last but one (it locks the admin out) and the flood
// last (its checks may still run after it).
func TestHostileTraffic(t *testing.T) {
	t.Parallel()
	data, dsn := newDatabase(t, "sqlite")
	s := startServer(t, data, dsn, "--metrics-token", hostileMetricsToken, "--metrics-addr", "127.0.0.1:0")
	t.Run("metrics not public", func(t *testing.T) { metricsNotPublic(t, s.forTest(t)) })
	admin := s.token("admin", adminPassword)
	t.Run("webhook starvation", func(t *testing.T) { webhookStarvation(t, s.forTest(t), admin) })
	t.Run("sign-in race", func(t *testing.T) { signInRace(t, s.forTest(t)) })
	t.Run("sign-in flood", func(t *testing.T) { signInFlood(t, s.forTest(t), admin) })
}

// forTest returns s acting for t (a subtest), so its failures end the right test.
func (s *server) forTest(t *testing.T) *server {
	c := *s
	c.t = t
	return &c
}

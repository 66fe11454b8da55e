package e2e

import (
	"io"
	"net/http"
	"regexp"
	"strings"
	"testing"
)

// metricsStatus reads url with bearer ("" = none) and returns the status and body.
func metricsStatus(t *testing.T, url, bearer string) (int, string) {
	t.Helper()
	req, err := http.NewRequest("GET", url, nil)
	if err != nil {
		t.Fatal(err)
	}
	if bearer != "" {
		req.Header.Set("Authorization", "Bearer "+bearer)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

var metricsAddrRE = regexp.MustCompile(`serves /metrics on (http://\S+/metrics)`)

// TestMetricsNotPublic: /metrics names pipelines, so the server's address answers it only to a
// global admin's API token or the metrics token (--metrics-token); --metrics-addr serves it on
// an address of its own, open to whoever reaches it.
func TestMetricsNotPublic(t *testing.T) {
	t.Parallel()
	t.Run("token", func(t *testing.T) {
		t.Parallel()
		const token = "e2e-metrics-token-0123456789"
		data, dsn := newDatabase(t, "sqlite")
		s := startServer(t, data, dsn, "--metrics-token", token)
		admin := s.token("admin", adminPassword)
		hook := s.enableHook(admin, slowPipeline("secret-project", 0), "secret-project", "")
		if code, _, _ := post(t, hook, `{}`); code != http.StatusAccepted {
			t.Fatalf("webhook → %d", code)
		}
		bob := s.user(admin, "bob")
		for _, c := range []struct {
			who, bearer string
			want        int
		}{{"anonymous", "", 401}, {"bob", bob, 403}, {"a wrong token", token + "x", 401}, {"admin", admin, 200}, {"the metrics token", token, 200}} {
			code, body := metricsStatus(t, s.URL+"/metrics", c.bearer)
			if code != c.want || strings.Contains(body, "secret-project") != (c.want == 200) {
				t.Errorf("/metrics for %s → %d (names the pipeline: %v), want %d", c.who, code, strings.Contains(body, "secret-project"), c.want)
			}
		}
	})
	t.Run("address", func(t *testing.T) {
		t.Parallel()
		data, dsn := newDatabase(t, "sqlite")
		s := startServer(t, data, dsn, "--metrics-addr", "127.0.0.1:0")
		var m []string
		waitFor(t, "flowd to say where it serves /metrics", func() bool {
			m = metricsAddrRE.FindStringSubmatch(s.out.String())
			return m != nil
		})
		if code, body := metricsStatus(t, m[1], ""); code != 200 || !strings.Contains(body, "flowd_job_queue_depth") {
			t.Errorf("the metrics address, anonymous → %d, want 200 with flowd's metrics", code)
		}
		if code, _ := metricsStatus(t, s.URL+"/metrics", ""); code != 401 {
			t.Errorf("the server's own /metrics, anonymous → %d, want 401", code)
		}
		if code, _ := metricsStatus(t, strings.TrimSuffix(m[1], "/metrics")+"/api/v1/pipelines", ""); code != 404 {
			t.Errorf("the metrics address serves more than /metrics: %d", code)
		}
	})
}

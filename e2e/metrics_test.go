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

// metricsNotPublic: /metrics names pipelines, so s (started with --metrics-token
// hostileMetricsToken and --metrics-addr) answers it only to that token (a global admin's API
// token too, tested in internal/api), and serves it alone on the metrics address (open without
// a metrics token, also tested in internal/api).
func metricsNotPublic(t *testing.T, s *server) {
	const token = hostileMetricsToken
	var m []string
	waitFor(t, "flowd to say where it serves /metrics", func() bool {
		m = metricsAddrRE.FindStringSubmatch(s.out.String())
		return m != nil
	})
	for _, c := range []struct {
		where, url, bearer string
		want               int
	}{
		{"the server, anonymous", s.URL + "/metrics", "", 401},
		{"the server, a wrong token", s.URL + "/metrics", token + "x", 401},
		{"the server, the metrics token", s.URL + "/metrics", token, 200},
		{"the metrics address, anonymous", m[1], "", 401},
		{"the metrics address, the metrics token", m[1], token, 200},
		{"the metrics address, another path", strings.TrimSuffix(m[1], "/metrics") + "/api/v1/pipelines", token, 404},
	} {
		code, body := metricsStatus(t, c.url, c.bearer)
		if code != c.want || (code == 200) != strings.Contains(body, "flowd_job_queue_depth") {
			t.Errorf("%s → %d, want %d (with flowd's metrics only when 200)", c.where, code, c.want)
		}
	}
}

package metrics_test

import (
	"testing"
	"time"

	"github.com/flowd/flowd/internal/metrics"
)

func TestWebhookMetrics(t *testing.T) {
	t.Parallel()
	m := metrics.New()
	m.WebhookDelivery("hello", "started")
	m.WebhookDelivery("hello", "started")
	m.WebhookDelivery("hello", "rate_limited")
	m.WebhookDelivery("", "not_found")
	m.WebhookRunLatency(30 * time.Millisecond)
	m.WebhookRunLatency(2 * time.Second)
	wantLines(t, scrape(t, m),
		`flowd_webhook_deliveries_total{code="started",pipeline="hello"} 2`,
		`flowd_webhook_deliveries_total{code="rate_limited",pipeline="hello"} 1`,
		`flowd_webhook_deliveries_total{code="not_found",pipeline=""} 1`,
		`flowd_webhook_run_latency_seconds_count 2`,
		`flowd_webhook_run_latency_seconds_bucket{le="0.05"} 1`,
		`flowd_webhook_run_latency_seconds_sum 2.03`,
	)

	var nilM *metrics.Metrics
	nilM.WebhookDelivery("x", "started")
	nilM.WebhookRunLatency(time.Second)
}

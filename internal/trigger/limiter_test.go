package trigger_test

import (
	"testing"

	"github.com/flowd/flowd/internal/store/storetest"
	"github.com/flowd/flowd/internal/trigger"
)

// TestSharedLimiter: two servers' limiters on one database accept a trigger's burst between
// them, not each: exactly, a token at a time, for the usual burst; and for a huge burst,
// taken ahead in chunks, never more than the burst and at most the chunks left unspent less.
func TestSharedLimiter(t *testing.T) {
	t.Parallel()
	for _, dialect := range []string{"sqlite", "postgres"} {
		t.Run(dialect, func(t *testing.T) {
			t.Parallel()
			dsn := storetest.DSN(t, dialect)
			sa, sb := storetest.OpenAt(t, dsn), storetest.OpenAt(t, dsn)
			taken := func(key string, burst, requests int) int {
				t.Helper()
				a := trigger.NewSharedLimiter(sa, 0.001, burst)
				b := trigger.NewSharedLimiter(sb, 0.001, burst)
				n := 0
				for i := range requests {
					l := []*trigger.SharedLimiter{a, b}[i%2]
					ok, wait, err := l.Take(t.Context(), key)
					if err != nil {
						t.Fatal(err)
					}
					if ok {
						n++
					} else if wait <= 0 {
						t.Fatalf("a refusal without a wait")
					}
				}
				return n
			}
			if n := taken("7", 100, 150); n != 100 {
				t.Errorf("150 requests through two servers with a burst of 100: %d accepted, want 100", n)
			}
			// A burst of 4,096 is taken 4 tokens a statement: at most 3 per server stay unspent.
			if n := taken("8", 4096, 5000); n > 4096 || n < 4096-6 {
				t.Errorf("5,000 requests through two servers with a burst of 4,096: %d accepted, want 4,090 to 4,096", n)
			}
		})
	}
}

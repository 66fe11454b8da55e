package trigger

// UnknownToken is the answer to a webhook URL whose token belongs to no trigger: the same bytes
// Deliver answers for a disabled trigger's URL, so the two cannot be told apart. The API sends
// it before it reads anything of the request but its headers.
func UnknownToken() Outcome {
	var w Webhooks
	return *w.notFound(&delivery{in: Incoming{Token: "unknown"}})
}

package web

import (
	"fmt"
	"net/http"
)

// statusLook is how a status shows: its colour and an icon that reads without colour.
type statusLook struct {
	Color string
	Glyph string // the SVG path drawn in white on the colour
	Icon  string // the text icon beside the status word
}

var looks = map[string]statusLook{
	"success":  {"#1f883d", "M9 16.5l4.5 4.5L23 11.5", "✓"},
	"failed":   {"#cf222e", "M11 11l10 10M21 11L11 21", "✗"},
	"running":  {"#0969da", "M16 9v7l5 3", "▶"},
	"queued":   {"#6e7781", "M10 16h.01M16 16h.01M22 16h.01", "…"},
	"canceled": {"#9a6700", "M10 16h12", "⊘"},
	"skipped":  {"#8c959f", "M11 10l7 6-7 6", "↷"},
}

// statusIcon is the text icon of a status, for templates.
func statusIcon(status string) string {
	if l, ok := looks[status]; ok {
		return l.Icon
	}
	return "•"
}

// favicon: GET /favicon.svg[?status=…] draws the logo, or a status badge the pages switch to
// as a run's status changes.
func (h *handler) favicon(w http.ResponseWriter, r *http.Request) {
	var svg string
	if l, ok := looks[r.URL.Query().Get("status")]; ok {
		svg = fmt.Sprintf(`<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 32 32">`+
			`<circle cx="16" cy="16" r="15" fill="%s"/>`+
			`<path d="%s" fill="none" stroke="#fff" stroke-width="3.2" stroke-linecap="round" stroke-linejoin="round"/></svg>`,
			l.Color, l.Glyph)
	} else {
		svg = `<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 32 32">` +
			`<rect x="1" y="1" width="30" height="30" rx="7" fill="#24292f"/>` +
			`<path d="M7 10h10M7 16h14M7 22h8" stroke="#7ee2a8" stroke-width="3.2" stroke-linecap="round"/>` +
			`<circle cx="24" cy="22" r="3" fill="#7ee2a8"/></svg>`
	}
	hd := w.Header()
	hd.Set("Content-Type", "image/svg+xml")
	hd.Set("Cache-Control", "public, max-age=86400")
	_, _ = w.Write([]byte(svg))
}

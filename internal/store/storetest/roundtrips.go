package storetest

import (
	"bytes"
	"encoding/binary"
	"io"
	"net"
	"net/url"
	"strings"
	"sync"
	"testing"
)

// RoundTrips is a TCP proxy between a store and the PostgreSQL server that counts the round
// trips the store makes: each time it asks the server for an answer it must wait for (a Sync
// after at least one Execute of the extended protocol, or a simple Query), with the statements
// they ran. Statements are real and go to the real server; the proxy only reads the client's
// side of the protocol as it passes. pgx's own traffic is left out: the "-- ping" that
// database/sql sends on a connection idle for over a second, and the preparing round trip of a
// statement a connection runs for the first time (Parse and Describe, no Execute), whose count
// depends on which pooled connection a statement lands on.
type RoundTrips struct {
	ln net.Listener

	mu         sync.Mutex
	trips      int
	statements []string // the statement of each Execute and Query, in order
}

// CountRoundTrips starts a proxy to the server of dsn (a PostgreSQL DSN, e.g. from DSN) for the
// test's lifetime and returns the DSN that reaches the server through it.
func CountRoundTrips(t testing.TB, dsn string) (string, *RoundTrips) {
	t.Helper()
	u, err := url.Parse(dsn)
	if err != nil {
		t.Fatalf("storetest: round trips: %v", err)
	}
	target := u.Host
	if u.Port() == "" {
		target = net.JoinHostPort(u.Hostname(), "5432")
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("storetest: round trips: %v", err)
	}
	p := &RoundTrips{ln: ln}
	var wg sync.WaitGroup
	t.Cleanup(func() {
		ln.Close()
		wg.Wait()
	})
	wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Go(func() { p.serve(c, target) })
		}
	})
	u.Host = ln.Addr().String()
	return u.String(), p
}

// Count is the round trips counted so far.
func (p *RoundTrips) Count() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.trips
}

// Statements is the text of every statement run so far, in order, for a failure's message.
func (p *RoundTrips) Statements() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]string(nil), p.statements...)
}

// serve carries one connection both ways, reading the client's messages as they pass.
func (p *RoundTrips) serve(client net.Conn, target string) {
	defer client.Close()
	server, err := net.Dial("tcp", target)
	if err != nil {
		return
	}
	defer server.Close()
	done := make(chan struct{})
	go func() {
		io.Copy(client, server)
		client.Close()
		close(done)
	}()
	p.read(io.TeeReader(client, server))
	server.Close()
	<-done
}

// Message types of the client's side of the protocol (PostgreSQL's "Message Formats").
const (
	msgParse   = 'P'
	msgBind    = 'B'
	msgExecute = 'E'
	msgSync    = 'S'
	msgQuery   = 'Q'
)

// read follows the client's messages until the connection ends: the untyped startup messages
// (an SSL or GSS request first, when the client asks), then typed ones.
func (p *RoundTrips) read(r io.Reader) {
	var head [8]byte
startup:
	for { // untyped: length, then a code
		if _, err := io.ReadFull(r, head[:]); err != nil {
			return
		}
		n := int(binary.BigEndian.Uint32(head[:4])) - 8
		if n < 0 || n > 1<<20 {
			return
		}
		if _, err := io.CopyN(io.Discard, r, int64(n)); err != nil {
			return
		}
		switch binary.BigEndian.Uint32(head[4:]) {
		case 80877103, 80877104: // SSLRequest, GSSENCRequest: the real startup message follows
		default:
			break startup
		}
	}
	prepared := map[string]string{} // statement name → text
	var (
		unnamed   string // the unnamed statement's text
		portal    string // the text of the statement the next Execute runs
		executing []string
	)
	for {
		if _, err := io.ReadFull(r, head[:5]); err != nil {
			return
		}
		n := int(binary.BigEndian.Uint32(head[1:5])) - 4
		if n < 0 || n > 1<<30 {
			return
		}
		body := make([]byte, n)
		if _, err := io.ReadFull(r, body); err != nil {
			return
		}
		switch head[0] {
		case msgParse:
			name, rest := cstring(body)
			text, _ := cstring(rest)
			if name == "" {
				unnamed = text
			} else {
				prepared[name] = text
			}
		case msgBind:
			_, rest := cstring(body) // the portal
			name, _ := cstring(rest)
			portal = unnamed
			if name != "" {
				portal = prepared[name]
			}
		case msgExecute:
			executing = append(executing, portal)
		case msgSync:
			if len(executing) > 0 {
				p.add(executing...)
			}
			executing = executing[:0]
		case msgQuery:
			text, _ := cstring(body)
			if strings.TrimSpace(text) != "-- ping" {
				p.add(text)
			}
		}
	}
}

// add counts one round trip that ran statements.
func (p *RoundTrips) add(statements ...string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.trips++
	for _, s := range statements {
		p.statements = append(p.statements, strings.Join(strings.Fields(s), " "))
	}
}

// cstring splits a NUL-terminated string off b.
func cstring(b []byte) (string, []byte) {
	i := bytes.IndexByte(b, 0)
	if i < 0 {
		return string(b), nil
	}
	return string(b[:i]), b[i+1:]
}

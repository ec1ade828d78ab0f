// Package connlimit owns the gateway's limits on open client connections: a net.Listener wrapper that
// admits at most Max connections in total and at most PerClient from one peer IP address, and refuses the
// rest at accept time, before any HTTP parsing or TLS handshake is spent on them.
//
// A refused connection gets, when Options.Reply is set (plain HTTP listeners), a minimal raw
// "HTTP/1.1 503 Service Unavailable" with Retry-After and Connection: close, and is then closed; on a TLS
// listener (Reply false) it is closed without an answer, since plaintext would be garbage to a TLS client.
// Every refusal is counted (Stats) and logged at most once per second, with the number refused since the
// previous line, so a flood cannot flood the log too.
//
// An admitted connection holds its slot until its Close, which releases it exactly once however many
// times Close is called (net/http, a TLS wrapper and a hijacking handler may all close it).
//
// The attack it bounds: one client (or a botnet) opening connections until the process runs out of file
// descriptors, after which accept fails for everyone and upstream dials fail too.
package connlimit

import (
	"bytes"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"
)

// Options configure a Listener. The zero value limits nothing.
type Options struct {
	// Max is the most connections open at once in total; 0 means no limit.
	Max int
	// PerClient is the most connections open at once from one peer IP address (IPv4-mapped IPv6 counted
	// as IPv4); 0 means no limit. Behind a load balancer every connection comes from the balancer's
	// address, so a per-client limit then limits the balancer.
	PerClient int
	// Reply makes a refused connection get a raw 503 answer before it is closed (plain HTTP listeners
	// only; leave it false under TLS).
	Reply bool
	// RetryAfter is the Retry-After of that answer, rounded up to whole seconds; 0 means 1s.
	RetryAfter time.Duration
	// Logger gets the refusal lines (at most one per second); nil logs nothing.
	Logger *slog.Logger
	// OnReject, when not nil, is called for every refused connection with the reason ("total" or
	// "per_client"), e.g. to count it in a metric. It must not block.
	OnReject func(reason string)
}

// Reasons a connection is refused, as passed to Options.OnReject.
const (
	ReasonTotal     = "total"
	ReasonPerClient = "per_client"
)

// maxLingering bounds the refused connections being answered at once (each holds a descriptor for at
// most lingerTime while its 503 is delivered); past it a refused connection is closed at once.
const (
	maxLingering = 64
	lingerTime   = time.Second
)

// Listener is a net.Listener that enforces Options. It is safe for concurrent use.
type Listener struct {
	net.Listener
	opts  Options
	reply []byte

	mu    sync.Mutex
	open  int
	perIP map[netip.Addr]int

	lingering atomic.Int32
	rejected  [2]atomic.Uint64 // total, per client

	logMu      sync.Mutex
	lastLog    time.Time
	suppressed int
}

// Stats are a Listener's counters.
type Stats struct {
	// Open is the number of admitted connections not yet closed.
	Open int
	// RejectedTotal and RejectedPerClient count refusals by reason since the listener was made.
	RejectedTotal, RejectedPerClient uint64
}

// New wraps ln. Closing the Listener closes ln; connections already admitted stay open.
func New(ln net.Listener, opts Options) *Listener {
	retry := int64((opts.RetryAfter + time.Second - 1) / time.Second)
	if retry < 1 {
		retry = 1
	}
	body := "503 too many connections\n"
	reply := "HTTP/1.1 503 Service Unavailable\r\n" +
		"Content-Type: text/plain; charset=utf-8\r\n" +
		"Content-Length: " + itoa(int64(len(body))) + "\r\n" +
		"Retry-After: " + itoa(retry) + "\r\n" +
		"Connection: close\r\n\r\n" + body
	return &Listener{Listener: ln, opts: opts, reply: []byte(reply), perIP: map[netip.Addr]int{}}
}

func itoa(n int64) string {
	var b [20]byte
	i := len(b)
	for {
		i--
		b[i] = byte('0' + n%10)
		n /= 10
		if n == 0 {
			return string(b[i:])
		}
	}
}

// Stats returns the current counters.
func (l *Listener) Stats() Stats {
	l.mu.Lock()
	open := l.open
	l.mu.Unlock()
	return Stats{Open: open, RejectedTotal: l.rejected[0].Load(), RejectedPerClient: l.rejected[1].Load()}
}

// Accept returns the next connection within the limits; refused connections are answered and closed
// here and never returned. Errors from the wrapped listener are returned as they are.
func (l *Listener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		ip := peerIP(c)
		reason := l.admit(ip)
		if reason == "" {
			return &conn{Conn: c, l: l, ip: ip}, nil
		}
		l.refuse(c, ip, reason)
	}
}

// admit takes a slot for ip, or says why it cannot.
func (l *Listener) admit(ip netip.Addr) string {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.opts.Max > 0 && l.open >= l.opts.Max {
		return ReasonTotal
	}
	if l.opts.PerClient > 0 && ip.IsValid() && l.perIP[ip] >= l.opts.PerClient {
		return ReasonPerClient
	}
	l.open++
	if l.opts.PerClient > 0 && ip.IsValid() {
		l.perIP[ip]++
	}
	return ""
}

func (l *Listener) release(ip netip.Addr) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.open--
	if l.opts.PerClient > 0 && ip.IsValid() {
		if n := l.perIP[ip] - 1; n > 0 {
			l.perIP[ip] = n
		} else {
			delete(l.perIP, ip)
		}
	}
}

func (l *Listener) refuse(c net.Conn, ip netip.Addr, reason string) {
	if reason == ReasonTotal {
		l.rejected[0].Add(1)
	} else {
		l.rejected[1].Add(1)
	}
	if l.opts.OnReject != nil {
		l.opts.OnReject(reason)
	}
	l.logRefusal(ip, reason)
	if !l.opts.Reply || l.lingering.Add(1) > maxLingering {
		if l.opts.Reply {
			l.lingering.Add(-1)
		}
		c.Close()
		return
	}
	// The client's request head is read first (answering before it arrives makes clients such as Go's
	// report an unsolicited response instead of the 503), then the answer written, the write side shut
	// and the rest drained briefly before the close: closing a socket with unread input sends a reset,
	// which can destroy the 503 before the client reads it. A client that sends nothing in time is closed.
	go func() {
		defer l.lingering.Add(-1)
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(lingerTime))
		if !readHead(c) {
			return
		}
		if _, err := c.Write(l.reply); err != nil {
			return
		}
		if cw, ok := c.(interface{ CloseWrite() error }); ok {
			_ = cw.CloseWrite()
		}
		var buf [512]byte
		for i := 0; i < 16; i++ { // at most 8 KiB more read and dropped
			if _, err := c.Read(buf[:]); err != nil {
				return
			}
		}
	}()
}

// readHead reads from c until the end of a request head (an empty line), at most 8 KiB; false when the
// client sent nothing, closed or stalled.
func readHead(c net.Conn) bool {
	var buf [512]byte
	var tail []byte
	got := 0
	for got < 8<<10 {
		n, err := c.Read(buf[:])
		got += n
		tail = append(tail, buf[:n]...)
		if bytes.Contains(tail, []byte("\r\n\r\n")) || bytes.Contains(tail, []byte("\n\n")) {
			return true
		}
		if len(tail) > 3 {
			tail = append(tail[:0], tail[len(tail)-3:]...)
		}
		if err != nil {
			return got > 0 && !isTimeout(err)
		}
	}
	return true
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// logRefusal logs at most one line per second; refusals in between are counted into the next line.
func (l *Listener) logRefusal(ip netip.Addr, reason string) {
	if l.opts.Logger == nil {
		return
	}
	l.logMu.Lock()
	now := time.Now()
	if now.Sub(l.lastLog) < time.Second {
		l.suppressed++
		l.logMu.Unlock()
		return
	}
	suppressed := l.suppressed
	l.suppressed, l.lastLog = 0, now
	l.logMu.Unlock()
	st := l.Stats()
	l.opts.Logger.Warn("connection refused: over the connection limit",
		"reason", reason, "client", ip.String(), "open", st.Open,
		"max", l.opts.Max, "max_per_client", l.opts.PerClient,
		"also_refused_since_last_line", suppressed)
}

// Close closes the wrapped listener.
func (l *Listener) Close() error { return l.Listener.Close() }

func peerIP(c net.Conn) netip.Addr {
	switch a := c.RemoteAddr().(type) {
	case *net.TCPAddr:
		ip, _ := netip.AddrFromSlice(a.IP)
		return ip.Unmap()
	default:
		if a == nil {
			return netip.Addr{}
		}
		ap, err := netip.ParseAddrPort(a.String())
		if err != nil {
			return netip.Addr{} // unix sockets and the like: no per-client accounting
		}
		return ap.Addr().Unmap()
	}
}

// conn releases its slot on the first Close.
type conn struct {
	net.Conn
	l    *Listener
	ip   netip.Addr
	once atomic.Bool
}

func (c *conn) Close() error {
	err := c.Conn.Close()
	if c.once.CompareAndSwap(false, true) {
		c.l.release(c.ip)
	}
	return err
}

// CloseWrite shuts the write side when the wrapped connection can (net/http uses it for a graceful close).
func (c *conn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return errors.ErrUnsupported
}

// ReadFrom keeps the wrapped connection's zero-copy path (sendfile, splice) for net/http's file answers.
func (c *conn) ReadFrom(r io.Reader) (int64, error) {
	if rf, ok := c.Conn.(io.ReaderFrom); ok {
		return rf.ReadFrom(r)
	}
	return io.Copy(writerOnly{c.Conn}, r)
}

type writerOnly struct{ io.Writer }

// NetConn returns the wrapped connection.
func (c *conn) NetConn() net.Conn { return c.Conn }

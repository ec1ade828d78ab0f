package gateway

import (
	"net/http"
	"net/http/httptest"
	"testing"
	"time"
)

// closeCounter is an io.Closer that reports its Close.
type closeCounter chan struct{}

func (c closeCounter) Close() error { close(c); return nil }

// blockingGateway is a Gateway whose handler answers with name, after release is closed when it is
// not nil; closed is closed when the Gateway is.
func blockingGateway(name string, entered chan<- struct{}, release <-chan struct{}) (*Gateway, closeCounter) {
	closed := make(closeCounter)
	g := &Gateway{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if entered != nil {
			entered <- struct{}{}
		}
		if release != nil {
			<-release
		}
		w.Write([]byte(name))
	})}
	g.closers = append(g.closers, closed)
	return g, closed
}

func TestLiveSwapsWithoutLosingRequestsInFlight(t *testing.T) {
	entered, release := make(chan struct{}), make(chan struct{})
	first, firstClosed := blockingGateway("first", entered, release)
	second, secondClosed := blockingGateway("second", nil, nil)
	l := NewLive(nil)
	l.Swap(first)

	done := make(chan string)
	go func() {
		w := httptest.NewRecorder()
		l.ServeHTTP(w, httptest.NewRequest("GET", "/", nil))
		done <- w.Body.String()
	}()
	<-entered // the request runs on the first gateway

	retired, seq := l.Swap(second)
	if seq != 2 {
		t.Fatalf("generation %d, want 2", seq)
	}
	w := httptest.NewRecorder()
	l.ServeHTTP(w, httptest.NewRequest("GET", "/", nil))
	if w.Body.String() != "second" || l.Gateway() != second {
		t.Fatalf("a request after the swap was served by %q", w.Body)
	}
	select {
	case <-firstClosed:
		t.Fatal("the replaced gateway was closed while a request still ran on it")
	default:
	}
	if n, _ := l.Drain(); n != 1 {
		t.Fatalf("Drain counts %d running handlers, want 1", n)
	}
	close(release)
	if got := <-done; got != "first" {
		t.Fatalf("the request in flight got %q", got)
	}
	select {
	case <-retired:
	case <-time.After(5 * time.Second):
		t.Fatal("the replaced gateway was not closed after its last request")
	}
	<-firstClosed
	l.Close()
	<-secondClosed // the current gateway, idle, closes at once
}

func TestLiveDrainWaitsForTheLastHandler(t *testing.T) {
	entered, release := make(chan struct{}), make(chan struct{})
	g, _ := blockingGateway("g", entered, release)
	l := NewLive(nil)
	l.Swap(g)
	go l.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("GET", "/", nil))
	<-entered
	n, drained := l.Drain()
	if n != 1 {
		t.Fatalf("Drain counts %d, want 1", n)
	}
	select {
	case <-drained:
		t.Fatal("drained while a handler runs")
	default:
	}
	close(release)
	select {
	case <-drained:
	case <-time.After(5 * time.Second):
		t.Fatal("not drained after the last handler returned")
	}
	if l.Running() != 0 {
		t.Fatalf("Running = %d", l.Running())
	}
}

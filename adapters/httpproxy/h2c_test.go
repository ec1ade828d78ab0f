package httpproxy

import (
	"io"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/switchyard/switchyard/adapters"
)

func buildApp(t *testing.T, raw string) http.Handler {
	t.Helper()
	reg := adapters.NewRegistry(nil)
	reg.MustRegister(Kind())
	tg, _, err := reg.Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	h, err := reg.Build(tg)
	if err != nil {
		t.Fatal(err)
	}
	if c, ok := h.(interface{ Close() error }); ok {
		t.Cleanup(func() { c.Close() })
	}
	return h
}

func TestH2COptionSpeaksHTTP2ToTheApp(t *testing.T) {
	tests := []struct {
		name      string
		option    string
		wantMajor int
	}{
		{"with h2c=true the app sees HTTP/2 and its trailers come back", "?h2c=true", 2},
		{"without the option the app sees HTTP/1.1", "", 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			seen := make(chan int, 1)
			up := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				seen <- r.ProtoMajor
				w.Header().Set("Trailer", "Grpc-Status")
				io.WriteString(w, "hello over h2c")
				w.Header().Set("Grpc-Status", "0")
			}))
			up.Config.Protocols = new(http.Protocols)
			up.Config.Protocols.SetHTTP1(true)
			up.Config.Protocols.SetUnencryptedHTTP2(true)
			up.Start()
			defer up.Close()

			// The client side speaks HTTP/2 over TLS, as a gRPC client would: HTTP/1.1 cannot carry
			// trailers on a response whose length the app declared.
			front := httptest.NewUnstartedServer(buildApp(t, up.URL+tt.option))
			front.EnableHTTP2 = true
			front.StartTLS()
			defer front.Close()
			resp, err := front.Client().Get(front.URL + "/rpc")
			if err != nil {
				t.Fatal(err)
			}
			body, err := io.ReadAll(resp.Body)
			resp.Body.Close()
			if err != nil || string(body) != "hello over h2c" {
				t.Fatalf("body %q, %v", body, err)
			}
			if got := <-seen; got != tt.wantMajor {
				t.Errorf("app saw HTTP/%d, want HTTP/%d", got, tt.wantMajor)
			}
			if got := resp.Trailer.Get("Grpc-Status"); got != "0" {
				t.Errorf("trailer Grpc-Status = %q, want 0", got)
			}
		})
	}
}

func TestH2COptionRefusesHTTPS(t *testing.T) {
	reg := adapters.NewRegistry(nil)
	reg.MustRegister(Kind())
	tg, _, err := reg.Parse("https://127.0.0.1:1?h2c=true")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := reg.Build(tg); err == nil {
		t.Fatal("h2c=true on an https app was accepted")
	}
}

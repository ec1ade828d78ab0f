package fastlane

import "net/http"

// Router is what the server's handler implements to let the lane serve requests: LaneHandler returns the
// handler to serve r with when r is one the lane may serve (its route a plain proxied HTTP app on the
// direct path, nothing in front of it that the lane does not mirror), else nil; done, when not nil, is
// called once the request is over. A server whose handler is no Router gets every connection handed.
type Router interface {
	LaneHandler(r *http.Request) (h http.Handler, done func())
}

// Options configure a Listener.
type Options struct {
	// Server is the http.Server that serves the Listener (and every connection handed to it). The lane
	// reads its Handler (a Router), ReadHeaderTimeout, IdleTimeout, MaxHeaderBytes, BaseContext,
	// ConnContext and ErrorLog, as net/http would for the same connection.
	Server *http.Server
	// MaxBody is the longest request body the lane takes (a request with a longer declared body is handed
	// to net/http); 0 means 64 KiB.
	MaxBody int64
}

// Package middleware owns the func(http.Handler) http.Handler wrappers the gateway puts around the front
// router and around each application: request ids, access logging, and (as they are added) header
// rewriting, compression, limits, auth and the rest of what wraps an app.
package middleware

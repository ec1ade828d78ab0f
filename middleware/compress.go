package middleware

import (
	"net/http"
	"strings"

	"github.com/klauspost/compress/gzhttp"
)

// CompressOptions configures Compress. The zero value compresses with gzip and zstd from 1 KiB up.
type CompressOptions struct {
	// MinSize is the smallest body compressed; 0 means 1024. A flushed response shorter than MinSize is
	// compressed anyway (the size is not known yet when the handler flushes).
	MinSize int
	// NoGzip and NoZstd turn one encoding off (both off is an error).
	NoGzip, NoZstd bool
}

// Compress returns middleware compressing responses with zstd or gzip, whichever the client prefers by
// Accept-Encoding q-values (zstd on a tie), using github.com/klauspost/compress/gzhttp. It never compresses
// text/event-stream (a server-sent-events client must see each event as it is flushed; compressing would
// only add latency), already-compressed types (images but SVG/BMP/icons, WOFF fonts, video, audio, archives),
// a response that already has a Content-Encoding, or a range answer. Flush works: it flushes the
// compressor and then the connection, so streamed compressible responses still arrive incrementally.
// Upgrades (WebSocket) pass through untouched. Vary: Accept-Encoding is always added.
func Compress(o CompressOptions) (func(http.Handler) http.Handler, error) {
	if o.MinSize <= 0 {
		o.MinSize = 1024
	}
	wrap, err := gzhttp.NewWrapper(
		gzhttp.MinSize(o.MinSize),
		gzhttp.EnableGzip(!o.NoGzip),
		gzhttp.EnableZstd(!o.NoZstd),
		gzhttp.ContentTypeFilter(compressible),
	)
	if err != nil {
		return nil, err
	}
	return func(next http.Handler) http.Handler { return wrap(next) }, nil
}

// compressible is gzhttp's default filter (no video, audio, JPEG or archive types) plus: no server-sent
// events, no images other than SVG, BMP and icons, no WOFF fonts (all already compressed).
func compressible(ct string) bool {
	mt, _, _ := strings.Cut(ct, ";")
	mt = strings.ToLower(strings.TrimSpace(mt))
	switch {
	case mt == "text/event-stream", mt == "font/woff", mt == "font/woff2":
		return false
	case strings.HasPrefix(mt, "image/"):
		return mt == "image/svg+xml" || mt == "image/bmp" || mt == "image/x-icon" || mt == "image/vnd.microsoft.icon"
	}
	return gzhttp.DefaultContentTypeFilter(ct)
}

func buildCompress(p *params, _ BuildEnv) (func(http.Handler) http.Handler, error) {
	min, err := p.Size("min_size", 1024)
	if err != nil {
		return nil, err
	}
	gz, err := p.Bool("gzip", true)
	if err != nil {
		return nil, err
	}
	zs, err := p.Bool("zstd", true)
	if err != nil {
		return nil, err
	}
	if !gz && !zs {
		return nil, p.errf("gzip", "false", "at least one of gzip and zstd enabled")
	}
	if min > 1<<30 {
		return nil, p.errf("min_size", p.m["min_size"], "a size up to 1GiB")
	}
	return Compress(CompressOptions{MinSize: int(min), NoGzip: !gz, NoZstd: !zs})
}

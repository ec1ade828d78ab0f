// Package static owns the static-file adapter: file:///srv/www serves the files below that directory, as
// nginx's root/try_files or Django's collectstatic output behind a web server would.
//
// Contract:
//   - Files are opened only through an os.Root, so nothing outside the directory is reachable, neither by
//     "..", nor by a symlink pointing outside (both give 404). Any path segment starting with "." is a
//     dotfile and gives 404 unless dotfiles=true (keeps .git, .env, .htpasswd private).
//   - The kind is MountAware: the handler gets the full request path and strips the mount itself.
//   - Only GET and HEAD; anything else is 405 with Allow: GET, HEAD.
//   - A directory without its trailing slash is redirected (301, query kept, Location under the mount); a
//     directory is answered with its first existing index file (option index, default index.html,
//     comma-separated list), else an HTML listing when listing=true, else 404 (the tree is not revealed).
//   - Conditional requests and ranges are http.ServeContent's: If-Match, If-Unmodified-Since, If-None-Match
//     (which takes precedence over If-Modified-Since, as RFC 9110 says), If-Range, single and multi ranges,
//     416. The ETag is strong and derived from the served file's modification time and size:
//     "<mtime ns hex>-<size hex>", with "-br", "-zstd" or "-gzip" appended for a precompressed variant. No
//     hashing, so a request never reads more of a file than it serves; the cost is that a file rewritten with
//     the same size within the same nanosecond keeps its ETag.
//   - Precompressed siblings (name.br, name.zst, name.gz) are served instead of name when the client's
//     Accept-Encoding gives them a non-zero weight: highest weight first, ties broken in the order br, zstd,
//     gzip. The response keeps name's Content-Type (by extension, else sniffed from name's first 512 bytes),
//     adds Content-Encoding, and ranges apply to the variant's bytes. Vary: Accept-Encoding is sent whenever
//     any sibling exists, whichever representation is chosen. A sibling is only used when name itself exists.
//   - Cache-Control: a base name carrying a content hash (see isHashedName) gets
//     "public, max-age=<immutable_max_age>, immutable" (default one year); every other file gets option
//     cache_control, default "public, max-age=0, must-revalidate" (caches may store, but must revalidate with
//     the ETag every time, so a redeploy is seen at once). Listings and errors get no Cache-Control.
//
// Options: index (comma list), listing (bool), dotfiles (bool), cache_control (a header value; empty sends
// none), immutable_max_age (a Go duration such as 8760h).
//
// The rules for one file are Files, exported for other adapters that serve files below a directory: the
// fastcgi adapter serves a PHP app's assets with it.
package static

import (
	"errors"
	"fmt"
	"html"
	"io"
	"io/fs"
	"log/slog"
	"mime"
	"net/http"
	"net/url"
	"os"
	"path"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/switchyard/switchyard/adapters"
)

// DefaultCacheControl is the Cache-Control of files whose name carries no content hash.
const DefaultCacheControl = "public, max-age=0, must-revalidate"

// DefaultImmutableMaxAge is the max-age of files whose name carries a content hash.
const DefaultImmutableMaxAge = 365 * 24 * time.Hour

// Kind returns the registry entry for file: apps.
func Kind() adapters.Kind {
	return adapters.Kind{
		Schemes:    []string{"file"},
		Factory:    func(t adapters.Target) (http.Handler, error) { return New(t) },
		MountAware: true,
		Summary:    "serves static files from a directory (file:///srv/www)",
	}
}

// Handler serves one directory. It holds the directory open; Close releases it.
type Handler struct {
	files   *Files
	root    *os.Root
	mount   string
	index   []string
	listing bool
}

// Files is the file-serving engine of file:// apps: the rules of the package contract for one regular
// file (dotfiles, precompressed siblings, ETag and Last-Modified, conditional requests, ranges,
// Cache-Control). It is exported so that other adapters serving files from a directory (the fastcgi
// adapter's static assets below its document root) follow exactly the same rules. It holds no directory:
// every call names the os.Root to serve from. A Files is read-only after NewFiles and safe for concurrent
// use.
type Files struct {
	app          string       // the APP string, for logs
	logger       *slog.Logger // never nil
	dir          string       // the directory, for logs
	dotfiles     bool
	cacheControl string
	immutable    string
}

// NewFiles builds the engine for app (the APP string) serving below dir (both only for log lines). It
// takes the options cache_control (a header value, empty sends none; default DefaultCacheControl) and
// immutable_max_age (default DefaultImmutableMaxAge) from o; dotfiles says whether names starting with "."
// may be served. A nil logger means slog.Default().
func NewFiles(app, dir string, logger *slog.Logger, o *adapters.Options, dotfiles bool) (*Files, error) {
	if logger == nil {
		logger = slog.Default()
	}
	f := &Files{app: app, logger: logger, dir: dir, dotfiles: dotfiles}
	f.cacheControl = o.String("cache_control", DefaultCacheControl)
	if strings.ContainsAny(f.cacheControl, "\r\n") {
		return nil, fmt.Errorf("option cache_control: must be one line")
	}
	maxAge, err := o.Duration("immutable_max_age", DefaultImmutableMaxAge)
	if err != nil {
		return nil, err
	}
	f.immutable = "public, max-age=" + strconv.FormatInt(int64(maxAge/time.Second), 10) + ", immutable"
	return f, nil
}

// New builds the handler for t (file:///absolute/dir). The directory must exist when New runs.
func New(t adapters.Target) (*Handler, error) {
	u := t.URL
	if u.Opaque != "" || (u.Host != "" && u.Host != "localhost") || !strings.HasPrefix(u.Path, "/") {
		return nil, fmt.Errorf("expected file:///absolute/directory (an absolute path, no host)")
	}
	dir := path.Clean(u.Path)
	fi, err := os.Stat(dir)
	if err != nil {
		return nil, fmt.Errorf("directory %s: %v: expected an existing directory to serve", dir, pathErrCause(err))
	}
	if !fi.IsDir() {
		return nil, fmt.Errorf("%s is not a directory: expected the directory to serve", dir)
	}
	h := &Handler{mount: strings.TrimSuffix(t.Mount, "/")}
	for _, name := range strings.Split(t.Options.String("index", "index.html"), ",") {
		name = strings.TrimSpace(name)
		if name == "" {
			continue
		}
		if strings.ContainsAny(name, "/\\") || name == "." || name == ".." {
			return nil, fmt.Errorf("option index=%q: expected file names without '/'", name)
		}
		h.index = append(h.index, name)
	}
	if h.listing, err = t.Options.Bool("listing", false); err != nil {
		return nil, err
	}
	dotfiles, err := t.Options.Bool("dotfiles", false)
	if err != nil {
		return nil, err
	}
	if h.files, err = NewFiles(t.Name, dir, t.Logger, t.Options, dotfiles); err != nil {
		return nil, err
	}
	if h.root, err = os.OpenRoot(dir); err != nil {
		return nil, fmt.Errorf("directory %s: %w", dir, err)
	}
	return h, nil
}

// pathErrCause drops the operation and path of an *fs.PathError ("stat /srv/www: no such file or
// directory" gives "no such file or directory"), for messages that name the path themselves.
func pathErrCause(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

// Close releases the directory.
func (h *Handler) Close() error { return h.root.Close() }

func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, http.StatusText(http.StatusMethodNotAllowed), http.StatusMethodNotAllowed)
		return
	}
	p := r.URL.Path
	var rel string
	switch {
	case h.mount == "":
		rel = p
	case p == h.mount:
		rel = ""
	case strings.HasPrefix(p, h.mount+"/"):
		rel = p[len(h.mount):]
	default:
		http.NotFound(w, r)
		return
	}
	name, ok := h.files.Name(rel)
	if !ok {
		http.NotFound(w, r)
		return
	}
	fi, err := h.root.Stat(name)
	if err != nil {
		h.files.openError(w, r, err)
		return
	}
	if fi.IsDir() {
		if !strings.HasSuffix(rel, "/") {
			h.redirectSlash(w, r)
			return
		}
		h.serveDir(w, r, name)
		return
	}
	if strings.HasSuffix(rel, "/") || !fi.Mode().IsRegular() {
		http.NotFound(w, r)
		return
	}
	h.files.serve(w, r, h.root, name)
}

// Name turns rel, a request path below the mount ("" or starting with "/"), into a name for an os.Root
// ("." for the top). It refuses ".." segments, NUL and backslashes outright, and dotfiles unless enabled;
// os.Root would refuse escapes anyway.
func (h *Files) Name(rel string) (string, bool) {
	if strings.ContainsAny(rel, "\x00\\") {
		return "", false
	}
	var segs []string
	for seg := range strings.SplitSeq(rel, "/") {
		switch {
		case seg == "" || seg == ".":
			continue
		case seg == "..":
			return "", false
		case strings.HasPrefix(seg, ".") && !h.dotfiles:
			return "", false
		}
		segs = append(segs, seg)
	}
	if len(segs) == 0 {
		return ".", true
	}
	return strings.Join(segs, "/"), true
}

func (h *Files) openError(w http.ResponseWriter, r *http.Request, err error) {
	if errors.Is(err, fs.ErrPermission) {
		http.Error(w, http.StatusText(http.StatusForbidden), http.StatusForbidden)
		return
	}
	if !errors.Is(err, fs.ErrNotExist) && !errors.Is(err, syscall.ENOTDIR) {
		// Escapes through a symlink and odd failures are all answered 404, but logged, since an escape
		// attempt or an I/O error is worth seeing.
		h.logf(r, err)
	}
	http.NotFound(w, r)
}

func (h *Files) logf(r *http.Request, err error) {
	h.logger.LogAttrs(r.Context(), slog.LevelWarn, "static file not served",
		slog.String("app", h.app), slog.String("upstream", h.dir), slog.String("path", r.URL.Path),
		slog.String("cause", err.Error()))
}

// redirectSlash answers 301 to the same path with "/" appended, keeping the query.
func (h *Handler) redirectSlash(w http.ResponseWriter, r *http.Request) {
	loc := "/" + strings.TrimLeft(r.URL.Path, "/") + "/" // never "//host": no open redirect
	loc = (&url.URL{Path: loc}).EscapedPath()
	if r.URL.RawQuery != "" {
		loc += "?" + r.URL.RawQuery
	}
	http.Redirect(w, r, loc, http.StatusMovedPermanently)
}

func (h *Handler) serveDir(w http.ResponseWriter, r *http.Request, name string) {
	for _, idx := range h.index {
		fname := path.Join(name, idx)
		if fi, err := h.root.Stat(fname); err == nil && fi.Mode().IsRegular() {
			h.files.serve(w, r, h.root, fname)
			return
		}
	}
	if !h.listing {
		http.NotFound(w, r)
		return
	}
	h.serveListing(w, r, name)
}

// encodings are the precompressed variants, in server preference order for equal client weights.
var encodings = []struct{ coding, suffix string }{
	{"br", ".br"},
	{"zstd", ".zst"},
	{"gzip", ".gz"},
}

// ServeFile answers r with the regular file name (as returned by Name) below root, or its best
// precompressed sibling, following the package contract: GET and HEAD only (anything else is 405 with
// Allow: GET, HEAD), conditional requests and ranges, ETag, Last-Modified, Cache-Control, Vary. A name
// that is not a regular file below root (missing, a directory, a FIFO, a symlink leading out) is 404.
func (h *Files) ServeFile(w http.ResponseWriter, r *http.Request, root *os.Root, name string) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, http.StatusText(http.StatusMethodNotAllowed), http.StatusMethodNotAllowed)
		return
	}
	h.serve(w, r, root, name)
}

// serve is ServeFile once the method is known to be GET or HEAD.
func (h *Files) serve(w http.ResponseWriter, r *http.Request, root *os.Root, name string) {
	f, fi, err := openRegular(root, name)
	if err != nil {
		h.openError(w, r, err)
		return
	}
	defer f.Close()

	ctype := mime.TypeByExtension(path.Ext(name))
	if ctype == "" {
		var buf [512]byte
		n, _ := io.ReadFull(f, buf[:])
		ctype = http.DetectContentType(buf[:n])
		if _, err := f.Seek(0, io.SeekStart); err != nil {
			h.openError(w, r, err)
			return
		}
	}

	served, sfi, coding := f, fi, ""
	ae := parseAcceptEncoding(r.Header.Values("Accept-Encoding"))
	anySibling := false
	best := 0.0
	for _, e := range encodings {
		vf, vfi, err := openRegular(root, name+e.suffix)
		if err != nil {
			continue
		}
		anySibling = true
		if q := ae.weight(e.coding); q > best {
			if served != f {
				served.Close()
			}
			served, sfi, coding, best = vf, vfi, e.coding, q
			continue
		}
		vf.Close()
	}
	if served != f {
		defer served.Close()
	}

	hdr := w.Header()
	if anySibling {
		hdr.Add("Vary", "Accept-Encoding")
	}
	hdr.Set("Content-Type", ctype)
	hdr.Set("X-Content-Type-Options", "nosniff")
	etag := `"` + strconv.FormatInt(sfi.ModTime().UnixNano(), 16) + "-" + strconv.FormatInt(sfi.Size(), 16)
	if coding != "" {
		hdr.Set("Content-Encoding", coding)
		etag += "-" + coding
	}
	hdr.Set("ETag", etag+`"`)
	if isHashedName(path.Base(name)) {
		hdr.Set("Cache-Control", h.immutable)
	} else if h.cacheControl != "" {
		hdr.Set("Cache-Control", h.cacheControl)
	}
	if coding != "" {
		// ServeContent leaves Content-Length out of a full response once Content-Encoding is set (it guards
		// against on-the-fly compressing wrappers); the variant's size is the right length here.
		w = &lengthWriter{ResponseWriter: w, size: sfi.Size()}
	}
	http.ServeContent(w, r, name, sfi.ModTime(), served)
}

// lengthWriter adds Content-Length to a 200 that lacks one.
type lengthWriter struct {
	http.ResponseWriter
	size int64
}

func (lw *lengthWriter) WriteHeader(code int) {
	if code == http.StatusOK && lw.Header().Get("Content-Length") == "" {
		lw.Header().Set("Content-Length", strconv.FormatInt(lw.size, 10))
	}
	lw.ResponseWriter.WriteHeader(code)
}

func (lw *lengthWriter) Unwrap() http.ResponseWriter { return lw.ResponseWriter }

// openRegular opens name if it is a regular file. O_NONBLOCK keeps a FIFO planted in the tree from hanging
// the request in open(2); it has no effect on regular files.
func openRegular(root *os.Root, name string) (*os.File, fs.FileInfo, error) {
	f, err := root.OpenFile(name, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		return nil, nil, err
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, nil, err
	}
	if !fi.Mode().IsRegular() {
		f.Close()
		return nil, nil, fs.ErrNotExist
	}
	return f, fi, nil
}

// serveListing writes a sorted HTML index of the directory; names are HTML-escaped and links are
// path-escaped and made relative with "./" so a name like "javascript:x" cannot become a scheme.
func (h *Handler) serveListing(w http.ResponseWriter, r *http.Request, name string) {
	d, err := h.root.Open(name)
	if err != nil {
		h.files.openError(w, r, err)
		return
	}
	defer d.Close()
	entries, err := d.ReadDir(-1)
	if err != nil {
		h.files.openError(w, r, err)
		return
	}
	var names []string
	for _, e := range entries {
		n := e.Name()
		if strings.HasPrefix(n, ".") && !h.files.dotfiles {
			continue
		}
		isDir := e.IsDir()
		if e.Type()&fs.ModeSymlink != 0 {
			if fi, err := h.root.Stat(path.Join(name, n)); err == nil {
				isDir = fi.IsDir()
			}
		}
		if isDir {
			n += "/"
		}
		names = append(names, n)
	}
	slices.Sort(names)
	title := html.EscapeString(r.URL.Path)
	var b strings.Builder
	b.WriteString("<!doctype html>\n<meta charset=\"utf-8\">\n<title>Index of " + title + "</title>\n<h1>Index of " + title + "</h1>\n<ul>\n")
	for _, n := range names {
		href := "./" + (&url.URL{Path: n}).EscapedPath()
		fmt.Fprintf(&b, "<li><a href=\"%s\">%s</a></li>\n", html.EscapeString(href), html.EscapeString(n))
	}
	b.WriteString("</ul>\n")
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.Header().Set("Content-Length", strconv.Itoa(b.Len()))
	w.WriteHeader(http.StatusOK)
	if r.Method != http.MethodHead {
		io.WriteString(w, b.String())
	}
}

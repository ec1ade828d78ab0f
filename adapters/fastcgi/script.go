package fastcgi

import (
	"errors"
	"io/fs"
	"os"
	"strings"

	"github.com/switchyard/switchyard/adapters/static"
)

// errNoScript means the request names no script the adapter is willing to run; the client gets 404.
var errNoScript = errors.New("no script to run")

// scripts decides which file under the document root a request runs (script-running mode).
type scripts struct {
	root      string // document root on the FastCGI server, absolute, no trailing slash
	index     string // index file name, no slash
	ext       string // script extension, ".php"
	checkFile bool   // check existence under root on the gateway's filesystem
	// files serves the existing regular files that are not scripts (nginx's try_files $uri step) with the
	// rules of file:// apps; nil when the static option is off (then they go to the front controller).
	// Only set together with checkFile: the gateway can only serve what it can see.
	files *static.Files
}

// resolved is the outcome for one request path.
type resolved struct {
	// Script is the script's path below the mount, starting with "/" ("/info.php", "/sub/index.php").
	Script string
	// PathInfo is the rest of the request path after Script, "" or starting with "/".
	PathInfo string
	// Static, when not empty, is the os.Root name ("css/site.css") of an existing regular file to serve as
	// a static file instead of running anything; Script and PathInfo are empty then.
	Static string
}

// resolve maps rel, the request path below the mount ("" or starting with "/"), to a script.
//
// Rules, in order (the first that applies wins):
//  1. A path holding NUL, a backslash, an empty, "." or ".." segment is refused (errNoScript). The router
//     already normalises paths; this adapter does not rely on it.
//  2. Walking the segments from the left, the first segment that ends in ext (byte compare: no case or
//     Unicode folding, so "x.PHP" or "x.ph\u0440" never count) and, with checkFile, is a regular file
//     under root, is the script; what follows is PATH_INFO. With checkFile, a segment ending in ext that
//     does not exist, or lies below something that is not a directory, ends the walk with errNoScript:
//     /uploads/evil.jpg/x.php never runs evil.jpg (the cgi.fix_pathinfo / CVE-2019-11043 class), and
//     /missing.php is a 404 as with nginx's `try_files $uri =404`. A directory named like a script
//     (/lib.php/) is walked through.
//  3. Otherwise, if the path names a directory holding the index file, that index runs with an empty
//     PATH_INFO (/sub/ and /sub run /sub/index.php).
//  4. Otherwise, when static files are on (files not nil), a path without a trailing slash that names an
//     existing regular file is served as a static file (Static), as nginx's `try_files $uri` does: CSS,
//     JavaScript, images, and uploads, so /uploads/evil.jpg holding PHP code is sent as bytes and never
//     runs. Not when a segment starts with "." (dotfiles are never served: .env, .htaccess, .user.ini)
//     or the file name ends in ext under ASCII case folding (x.PHP: on a case-insensitive filesystem it
//     may be a script's source); those fall through to rule 5.
//  5. Otherwise the root's index file is the front controller: SCRIPT_NAME is mount + "/" + index,
//     PATH_INFO is empty and the application routes on REQUEST_URI, exactly like nginx's
//     `try_files $uri $uri/ /index.php?$query_string` used by Laravel, Symfony and WordPress. With
//     checkFile, a missing front controller is errNoScript.
//
// Existence is checked through os.Root, so neither ".." nor a symlink can make the script resolve outside
// the document root; the root is opened per request so a deploy that swaps a "current" symlink is
// followed.
func (s *scripts) resolve(rel string) (resolved, error) {
	root, err := s.open()
	if err != nil {
		return resolved{}, err
	}
	if root != nil {
		defer root.Close()
	}
	return s.resolveIn(root, rel)
}

// open opens the document root for one request, or returns nil without checkFile.
func (s *scripts) open() (*os.Root, error) {
	if !s.checkFile {
		return nil, nil
	}
	return os.OpenRoot(s.root)
}

// resolveIn is resolve with the document root already open (nil without checkFile).
func (s *scripts) resolveIn(root *os.Root, rel string) (resolved, error) {
	if strings.ContainsAny(rel, "\x00\\") {
		return resolved{}, errNoScript
	}
	if rel != "" && rel[0] != '/' {
		return resolved{}, errNoScript
	}
	trimmed := strings.TrimSuffix(rel, "/")
	var segs []string
	if trimmed != "" {
		segs = strings.Split(trimmed[1:], "/")
	}
	for _, seg := range segs {
		if seg == "" || seg == "." || seg == ".." {
			return resolved{}, errNoScript
		}
	}

	end := 0 // byte offset in rel of the end of the current prefix
	for _, seg := range segs {
		end += 1 + len(seg)
		if len(seg) <= len(s.ext) || !strings.HasSuffix(seg, s.ext) {
			continue
		}
		prefix := rel[:end]
		if root == nil {
			return resolved{Script: prefix, PathInfo: rel[end:]}, nil
		}
		fi, err := root.Stat(prefix[1:])
		switch {
		case err == nil && fi.Mode().IsRegular():
			return resolved{Script: prefix, PathInfo: rel[end:]}, nil
		case err == nil && fi.IsDir():
			continue
		default:
			return resolved{}, errNoScript
		}
	}

	if root != nil && trimmed != "" {
		fi, err := root.Stat(trimmed[1:])
		switch {
		case err == nil && fi.IsDir():
			idx := trimmed + "/" + s.index
			if fi, err := root.Stat(idx[1:]); err == nil && fi.Mode().IsRegular() {
				return resolved{Script: idx}, nil
			}
		case err == nil && fi.Mode().IsRegular() && s.files != nil && trimmed == rel && !hasFoldedSuffix(segs[len(segs)-1], s.ext):
			if name, ok := s.files.Name(rel); ok {
				return resolved{Static: name}, nil
			}
		}
	}
	front := "/" + s.index
	if root != nil {
		fi, err := root.Stat(s.index)
		if err != nil || !fi.Mode().IsRegular() {
			if err != nil && !errors.Is(err, fs.ErrNotExist) {
				return resolved{}, err
			}
			return resolved{}, errNoScript
		}
	}
	return resolved{Script: front}, nil
}

// hasFoldedSuffix reports whether name ends in ext with ASCII letters compared case-insensitively.
func hasFoldedSuffix(name, ext string) bool {
	if len(name) < len(ext) {
		return false
	}
	tail := name[len(name)-len(ext):]
	for i := 0; i < len(ext); i++ {
		if lowerASCII(tail[i]) != lowerASCII(ext[i]) {
			return false
		}
	}
	return true
}

func lowerASCII(c byte) byte {
	if 'A' <= c && c <= 'Z' {
		return c + 'a' - 'A'
	}
	return c
}

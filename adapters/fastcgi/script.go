package fastcgi

import (
	"errors"
	"io/fs"
	"os"
	"strings"
)

// errNoScript means the request names no script the adapter is willing to run; the client gets 404.
var errNoScript = errors.New("no script to run")

// scripts decides which file under the document root a request runs (script-running mode).
type scripts struct {
	root      string // document root on the FastCGI server, absolute, no trailing slash
	index     string // index file name, no slash
	ext       string // script extension, ".php"
	checkFile bool   // check existence under root on the gateway's filesystem
}

// resolved is the outcome for one request path.
type resolved struct {
	// Script is the script's path below the mount, starting with "/" ("/info.php", "/sub/index.php").
	Script string
	// PathInfo is the rest of the request path after Script, "" or starting with "/".
	PathInfo string
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
//  4. Otherwise the root's index file is the front controller: SCRIPT_NAME is mount + "/" + index,
//     PATH_INFO is empty and the application routes on REQUEST_URI, exactly like nginx's
//     `try_files $uri $uri/ /index.php?$query_string` used by Laravel, Symfony and WordPress. With
//     checkFile, a missing front controller is errNoScript.
//
// Existence is checked through os.Root, so neither ".." nor a symlink can make the script resolve outside
// the document root; the root is opened per request so a deploy that swaps a "current" symlink is
// followed.
func (s *scripts) resolve(rel string) (resolved, error) {
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

	var root *os.Root
	if s.checkFile {
		var err error
		root, err = os.OpenRoot(s.root)
		if err != nil {
			return resolved{}, err
		}
		defer root.Close()
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
		if fi, err := root.Stat(trimmed[1:]); err == nil && fi.IsDir() {
			idx := trimmed + "/" + s.index
			if fi, err := root.Stat(idx[1:]); err == nil && fi.Mode().IsRegular() {
				return resolved{Script: idx}, nil
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

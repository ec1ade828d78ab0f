package migration_test

import (
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/switchyard/switchyard/internal/testpeer"
	"github.com/switchyard/switchyard/migration"
)

// The product catalogue both apps serve: the old one (Django) and the new one (Express) agree on every
// product but the second, whose price the new app gets wrong. Each answer also carries generated_at, a
// volatile field the route ignores.
const (
	djangoViews = `import time

from django.http import JsonResponse
from django.urls import path

PRODUCTS = {
    1: {"sku": "TEA-1", "name": "Green tea", "price": 4.5, "tags": ["tea", "green"]},
    2: {"sku": "TEA-2", "name": "Black tea", "price": 5.25, "tags": ["tea"]},
}


def product(request, pk):
    p = PRODUCTS.get(pk)
    if p is None:
        return JsonResponse({"error": "no such product"}, status=404)
    return JsonResponse(dict(p, id=pk, generated_at=time.time()))


urlpatterns = [path("api/products/<int:pk>", product)]
`
	expressApp = `'use strict';
const express = require('express');
const products = {
  1: { sku: 'TEA-1', name: 'Green tea', price: 4.5, tags: ['tea', 'green'] },
  2: { sku: 'TEA-2', name: 'Black tea', price: 5.75, tags: ['tea'] },
};
const app = express();
app.get('/api/products/:id', (req, res) => {
  const id = Number(req.params.id);
  const p = products[id];
  if (!p) return res.status(404).json({ error: 'no such product' });
  res.json({ generated_at: new Date().toISOString(), id, ...p });
});
app.listen(process.env.SOCKET);
`
)

// startDjangoJSON creates a project with django-admin startproject, as a user does, adds the product
// view as its URLconf, and serves it with uWSGI on a unix socket.
func startDjangoJSON(t *testing.T) string {
	t.Helper()
	dir := testpeer.StartProject(t, "catalogue") // django-admin startproject, as a user does
	if err := os.WriteFile(filepath.Join(dir, "catalogue", "urls.py"), []byte(djangoViews), 0o644); err != nil {
		t.Fatal(err)
	}
	// Served as the project recommends for Django: uWSGI's own protocol. The old app of a migrating route
	// sees the request as with no route (SCRIPT_NAME empty, PATH_INFO the whole path), so the project's
	// URLconf needs no change.
	peer := testpeer.StartUWSGI(t, testpeer.UWSGI{
		Dir: dir,
		App: []string{"--module", "catalogue.wsgi"},
		Env: []string{"PYTHONDONTWRITEBYTECODE=1"},
	})
	return "uwsgi+unix://" + peer.Addr
}

// startExpressJSON runs the product handler on Express (the example app's dependencies) on a unix socket.
func startExpressJSON(t *testing.T) string {
	t.Helper()
	node := testpeer.Need(t, "install Node.js 20 (apt-get install nodejs)", "node")[0]
	modules := filepath.Join(testpeer.NodeDir(), "node_modules")
	if _, err := os.Stat(filepath.Join(modules, "express", "package.json")); err != nil {
		testpeer.Missing(t, "express is not installed; run: npm ci --prefix deploy/examples/node")
	}
	dir := t.TempDir()
	script := filepath.Join(dir, "catalogue.js")
	if err := os.WriteFile(script, []byte(expressApp), 0o644); err != nil {
		t.Fatal(err)
	}
	sock := testpeer.SocketPath(t, "express.sock")
	p := testpeer.Start(t, dir, []string{"NODE_PATH=" + modules, "SOCKET=" + sock}, node, script)
	testpeer.WaitDial(t, p, "unix", sock, testpeer.PeerStartTimeout)
	return "unix://" + sock
}

func TestDjangoAndExpressServingTheSameJSONMatchAndAChangedPriceIsNamed(t *testing.T) {
	django := startDjangoJSON(t)
	express := startExpressJSON(t)
	g, front := build(t, map[string]string{
		"GATEWAY_ROUTES": "/api/=" + express + "?stage=shadow&shadow_ignore=generated_at&old=" + url.QueryEscape(django),
	})

	// The two frameworks really do speak with different accents: the test is only worth something if
	// Express adds the charset Django leaves out.
	_, _, hdr := fetch(t, front+"/api/products/1")
	if ct := hdr.Get("Content-Type"); ct != "application/json" {
		t.Fatalf("Django answered Content-Type %q; want application/json", ct)
	}

	for i := 0; i < 4; i++ {
		status, body, _ := fetch(t, front+"/api/products/1")
		if status != 200 || !strings.Contains(body, `"Green tea"`) {
			t.Fatalf("client got %d %s; want Django's product", status, body)
		}
	}
	r := waitShadow(t, g, "/api/", 5)
	s := r.Shadow
	if s.Matched != 5 || s.MatchRate != 1 || len(s.Causes) != 0 {
		t.Fatalf("product 1: shadow = %+v; want 5 of 5 copies matching (100%%)", s)
	}
	if !strings.HasPrefix(strings.Join(s.Parts, "; "), "status; header Content-Type (as a media type") {
		t.Fatalf("parts = %q; want the report to say status and Content-Type were compared", s.Parts)
	}

	for i := 0; i < 2; i++ {
		if status, body, _ := fetch(t, front+"/api/products/2"); status != 200 || !strings.Contains(body, `5.25`) {
			t.Fatalf("client got %d %s; want Django's price", status, body)
		}
	}
	s = waitShadow(t, g, "/api/", 7).Shadow
	if s.Matched != 5 || s.Mismatched != 2 {
		t.Fatalf("shadow = %+v; want 5 matched, 2 mismatched", s)
	}
	if len(s.Causes) != 1 || s.Causes[0] != (migration.CauseCount{Cause: "body $.price", Count: 2}) {
		t.Fatalf("causes = %+v; want the price, twice", s.Causes)
	}
	m := s.Mismatches[0]
	if fmt.Sprint(m.Diff) != "[$.price: 5.25 != 5.75]" || fmt.Sprint(m.Causes) != "[body $.price]" || m.Path != "/api/products/2" {
		t.Fatalf("mismatch = %+v; want exactly $.price", m)
	}
}

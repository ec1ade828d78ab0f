// Package e2e owns the end-to-end tests that front real framework applications (Django under uWSGI,
// Flask under gunicorn, PHP-FPM, Node, static files) with one gateway at once, and the migration report
// with real peers (a Django/Express shadow route, the report page in headless Chromium). It has no code of
// its own.
package e2e

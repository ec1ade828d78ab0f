package config

import (
	"testing"

	"github.com/switchyard/switchyard/procs"
)

// FuzzRunList: GATEWAY_RUN's parser never panics, and every app it returns has a valid name and a
// source.
func FuzzRunList(f *testing.F) {
	for _, s := range []string{
		"blog(dir=/srv/blog, env.DJANGO_SETTINGS_MODULE=blog.settings): gunicorn --bind unix:{socket} blog.wsgi",
		"a: x; b(instances=2): y\nweb(procfile=web)",
		`n(env.X="a, (b)"): z`, "bad name: x", "a(dir: x", "a(instances=zero): x",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		var l RunList
		if err := l.UnmarshalText([]byte(s)); err != nil {
			return
		}
		for _, a := range l {
			if !procs.ValidName(a.Name) || a.Source != "GATEWAY_RUN" || a.Instances < 0 {
				t.Fatalf("bad app %+v from %q", a, s)
			}
		}
	})
}

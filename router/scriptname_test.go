package router

import (
	"net/http"
	"net/http/httptest"
	"testing"
)

func TestScriptNameHeaderAnnouncesThePrefixAndDropsEveryOtherCopy(t *testing.T) {
	var got http.Header
	var path string
	h := ScriptNameHeader("/flask/")(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got, path = r.Header, r.URL.Path
	}))
	r := httptest.NewRequest("GET", "/flask/hello", nil)
	for _, k := range []string{"SCRIPT_NAME", "Script-Name", "script-name", "X-Script-Name", "X_SCRIPT_NAME"} {
		r.Header[k] = []string{"/evil"}
	}
	r.Header.Set("X-Other", "kept")
	h.ServeHTTP(httptest.NewRecorder(), r)
	if path != "/flask/hello" {
		t.Errorf("path %q: the whole path must reach the app", path)
	}
	if len(got["Script_name"]) != 1 || got["Script_name"][0] != "/flask" {
		t.Errorf("SCRIPT_NAME %q, want [/flask]", got["Script_name"])
	}
	for k := range got {
		if k != "Script_name" && isMountHeader(k) {
			t.Errorf("a client's %s reached the app", k)
		}
	}
	if got.Get("X-Other") != "kept" {
		t.Error("an unrelated header was dropped")
	}
	if r.Header.Get("Script-Name") != "/evil" {
		t.Error("the caller's request was modified")
	}
}

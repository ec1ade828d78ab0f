package migration

import (
	"bytes"
	"fmt"
	"html/template"
	"net/http"
	"strings"
	"time"
)

// pageTemplate is the /migration page: static HTML and CSS, no script, refreshed every 15 seconds. Every
// value is escaped by html/template (app answers in samples are untrusted: shown as text, never markup).
var pageTemplate = template.Must(template.New("page").Funcs(template.FuncMap{
	"pct": func(f float64) string { return fmt.Sprintf("%.1f%%", f*100) },
	"pctw": func(f float64) string {
		return fmt.Sprintf("%.1f", f*100)
	},
	"ms":    func(f float64) string { return fmt.Sprintf("%.1f ms", f) },
	"ts":    func(t time.Time) string { return t.UTC().Format("2006-01-02 15:04:05 UTC") },
	"join":  func(s []string) string { return strings.Join(s, "; ") },
	"stage": func(s string) string { return strings.ToLower(s) },
}).Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta http-equiv="refresh" content="15">
<meta name="viewport" content="width=device-width">
<title>Switchyard migration report</title>
<style>
body{font:14px/1.4 system-ui,sans-serif;margin:24px;color:#1d2733;background:#f7f8fa;max-width:1400px}
h1{font-size:22px;margin:0 0 4px}
.meta{color:#667;margin-bottom:20px}
section.route{background:#fff;border:1px solid #d8dde3;border-radius:6px;padding:14px 18px;margin-bottom:18px;min-width:0}
h2{font-size:17px;margin:0 0 8px;font-family:ui-monospace,monospace;overflow-wrap:anywhere}
h3{font-size:15px;margin:14px 0 4px}
.badge{display:inline-block;padding:1px 8px;border-radius:10px;font-size:12px;font-family:system-ui;color:#fff;vertical-align:middle;margin-left:8px}
.s-legacy{background:#7a7f87}.s-shadow{background:#6b4fbb}.s-canary{background:#c77c02}.s-primary{background:#1f7a45}.s-retired{background:#2a5db0}
.since{color:#667;font-size:12px;margin-left:8px;font-family:system-ui;font-weight:normal}
table{border-collapse:collapse;margin:8px 0;max-width:100%}
th,td{padding:3px 12px 3px 0;text-align:left;vertical-align:top}
th{color:#667;font-weight:600;border-bottom:1px solid #e3e6ea;white-space:nowrap}
td.num{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
.bar{display:inline-block;width:200px;height:12px;background:#e8ebef;border-radius:6px;overflow:hidden;vertical-align:middle}
.bar span{display:block;height:100%;background:#1f7a45}
.apps{font-family:ui-monospace,monospace;font-size:13px;overflow-wrap:anywhere;word-break:break-all}
td.apps{min-width:8em}
details{margin:6px 0;border-left:3px solid #c0392b;padding-left:8px}
summary{overflow-wrap:anywhere}
pre{background:#f3f4f6;padding:6px;max-height:220px;overflow:auto;white-space:pre-wrap;word-break:break-all;margin:4px 0}
.diff{color:#a0271b}
.parts{color:#445}
.cols{display:flex;gap:12px}.cols>div{flex:1;min-width:0}
</style></head><body>
<h1>Migration report</h1>
<div class="meta">generated {{ts .Generated}} · configuration loaded {{ts .Since}} · each route counts since its migration was last changed</div>
{{range .Staged}}
<section class="route" data-pattern="{{.Pattern}}">
<h2>{{or .Pattern "(no route)"}}<span class="badge s-{{stage .Stage}}">{{.Stage}}{{if eq .Stage "canary"}} {{.CanaryPercent}}%{{end}}</span><span class="since">since {{ts .Since}}</span></h2>
{{if .New}}<div class="apps">new: {{.New}}{{if .Old}} · old: {{.Old}}{{end}}</div>{{end}}
<p>Requests <b class="requests">{{.Requests}}</b> · errors <b class="error-rate">{{pct .ErrorRate}}</b>
{{if .New}} · served by the new app <b class="new-share">{{pct .NewShare}}</b> <span class="bar"><span style="width:{{pctw .NewShare}}%"></span></span>{{end}}
{{if .FellBack}} · fell back to old: <b class="fell-back">{{.FellBack}}</b> (new app not reached){{end}}</p>
<table class="apps-table"><tr><th>app</th><th>role</th><th>requests</th><th>errors</th><th>error rate</th><th>p50</th><th>p99</th></tr>
{{range .Apps}}<tr data-app="{{.App}}"><td class="apps">{{.App}}</td><td>{{.Role}}</td><td class="num requests">{{.Requests}}</td><td class="num">{{.Errors}}</td><td class="num">{{pct .ErrorRate}}</td><td class="num">{{ms .P50ms}}</td><td class="num">{{ms .P99ms}}</td></tr>
{{else}}<tr><td colspan="7">no requests yet</td></tr>{{end}}
</table>
{{with .NegativeCache}}<p>Negative cache: <b class="saved">{{.Saved}}</b> round trips saved · {{.Entries}} paths held · {{.Remembered}} misses remembered</p>{{end}}
{{with .Shadow}}
<h3>Shadow comparison</h3>
<p>match rate <b class="match-rate">{{pct .MatchRate}}</b> · compared <b class="compared">{{.Compared}}</b> · matched {{.Matched}} · mismatched <b class="mismatched">{{.Mismatched}}</b> · no answer from the new app {{.Errors}} · dropped <b class="dropped">{{.Dropped}}</b> · skipped {{.Skipped}}</p>
<p class="parts">A copy matches when every compared part is equal: {{join .Parts}}.</p>
{{if .Causes}}<table class="causes"><tr><th>what differed</th><th>copies</th></tr>
{{range .Causes}}<tr><td class="apps">{{.Cause}}</td><td class="num">{{.Count}}</td></tr>
{{end}}</table>{{end}}
{{range $i, $m := .Mismatches}}
<details{{if eq $i 0}} open{{end}}><summary>{{ts $m.Time}} {{$m.Method}} {{$m.Path}}: {{join $m.Causes}}</summary>
<pre class="diff">{{range $m.Diff}}{{.}}
{{end}}</pre>
<div class="cols"><div>served (status {{$m.Served.Status}}{{if $m.Served.Truncated}}, truncated{{end}})<pre>{{$m.Served.Body}}</pre></div>
<div>shadow (status {{$m.Shadow.Status}}{{if $m.Shadow.Error}}, {{$m.Shadow.Error}}{{end}}{{if $m.Shadow.Truncated}}, truncated{{end}})<pre>{{$m.Shadow.Body}}</pre></div></div>
</details>
{{end}}
{{end}}
</section>
{{end}}
{{if .Plain}}<section class="route plain"><h2>Routes without a migration stage</h2>
<table class="plain-routes"><tr><th>route</th><th>app</th><th>requests</th><th>errors</th><th>error rate</th><th>p50</th><th>p99</th></tr>
{{range .Plain}}{{$r := .}}{{range .Apps}}<tr data-pattern="{{$r.Pattern}}"><td class="apps">{{or $r.Pattern "(no route)"}}</td><td class="apps">{{.App}}</td><td class="num requests">{{.Requests}}</td><td class="num">{{.Errors}}</td><td class="num">{{pct .ErrorRate}}</td><td class="num">{{ms .P50ms}}</td><td class="num">{{ms .P99ms}}</td></tr>
{{else}}<tr data-pattern="{{$r.Pattern}}"><td class="apps">{{or $r.Pattern "(no route)"}}</td><td colspan="6">no requests yet</td></tr>
{{end}}{{end}}</table></section>{{end}}
<section class="route"><h2>Cascade ledger</h2>
<p>Which app answered, per method, route and path template{{if .LedgerOverflow}} ({{.LedgerOverflow}} requests beyond the key limit counted under "(other paths)"){{end}}.</p>
<table class="ledger"><tr><th>method</th><th>route</th><th>path</th><th>requests</th><th>answered by</th></tr>
{{range .Ledger}}<tr><td>{{.Method}}</td><td class="apps">{{or .Route "(no route)"}}</td><td class="apps">{{.Path}}</td><td class="num">{{.Total}}</td><td class="apps">{{range $app, $n := .Answers}}<div>{{$app}}: {{$n}}</div>{{end}}</td></tr>
{{else}}<tr><td colspan="5">no requests yet</td></tr>{{end}}
</table></section>
</body></html>
`))

// pageData is the report as the page shows it: routes with a stage each get a section, the others share
// one table (a box per plain route would be mostly empty).
type pageData struct {
	Report
	Staged, Plain []RouteReport
}

// PageHandler serves the report as an HTML page (GET /migration).
func (r *Recorder) PageHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		if req.Method != http.MethodGet && req.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			http.Error(w, "405 method not allowed", http.StatusMethodNotAllowed)
			return
		}
		var buf bytes.Buffer
		data := pageData{Report: r.Report()}
		for _, rt := range data.Routes {
			if rt.Stage == "-" {
				data.Plain = append(data.Plain, rt)
			} else {
				data.Staged = append(data.Staged, rt)
			}
		}
		if err := pageTemplate.Execute(&buf, data); err != nil {
			http.Error(w, "500 report page: "+err.Error(), http.StatusInternalServerError)
			return
		}
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.Header().Set("Cache-Control", "no-store")
		w.Header().Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'")
		_, _ = w.Write(buf.Bytes())
	})
}

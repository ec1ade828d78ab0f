package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/switchyard/switchyard/config"
	"github.com/switchyard/switchyard/migration"
)

// report fetches http://ADMIN/api/migration from a running gateway and prints it as tables. ADMIN is the
// configured GATEWAY_ADMIN_ADDR (file or environment), 127.0.0.1:9901 by default.
func report(environ []string, stdout, stderr io.Writer) int {
	env := config.Environ(environ)
	addr, from := reportAddr(env)
	if addr == "" {
		fmt.Fprintf(stderr, "gateway report: the admin address (%s) is empty: the admin listener is off, so there is no report to read\n", from)
		return 2
	}
	if strings.HasPrefix(addr, ":") {
		addr = "127.0.0.1" + addr
	}
	url := "http://" + addr + "/api/migration"
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		fmt.Fprintf(stderr, "gateway report: cannot reach the admin listener at %s (%s): %v\n", addr, from, err)
		return 1
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		fmt.Fprintf(stderr, "gateway report: %s answered %s\n", url, resp.Status)
		return 1
	}
	var rep migration.Report
	if err := json.NewDecoder(io.LimitReader(resp.Body, 64<<20)).Decode(&rep); err != nil {
		fmt.Fprintf(stderr, "gateway report: %s: not a migration report: %v\n", url, err)
		return 1
	}
	printReport(stdout, rep)
	return 0
}

// reportAddr returns the admin address of the configuration in env and, for messages, where it came from:
// the variable, the file's key, or the default, which says how to point the command at another gateway.
func reportAddr(env map[string]string) (addr, from string) {
	cfg, err := config.Load(env, nil)
	if err == nil {
		if src, ok := cfg.Sources["GATEWAY_ADMIN_ADDR"]; ok {
			return cfg.AdminAddr, src.String()
		}
		return cfg.AdminAddr, "the default; set GATEWAY_ADMIN_ADDR, or GATEWAY_CONFIG naming a file with admin_addr, to the running gateway's"
	}
	if v, ok := env["GATEWAY_ADMIN_ADDR"]; ok {
		return v, "GATEWAY_ADMIN_ADDR" // the rest of the configuration may be for another gateway: the address is all we need
	}
	first, _, _ := strings.Cut(err.Error(), "\n")
	return config.Defaults().AdminAddr, "the default, as the configuration does not load (" + first + "); set GATEWAY_ADMIN_ADDR to the running gateway's"
}

func printReport(w io.Writer, rep migration.Report) {
	fmt.Fprintf(w, "migration report, %s (configuration loaded %s; each route counts since its migration last changed)\n\n", rep.Generated.Format(time.RFC3339), rep.Since.Format(time.RFC3339))
	tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "ROUTE\tSTAGE\tSINCE\tAPP\tROLE\tREQUESTS\tERRORS\tP50\tP99\tNEW SHARE\tSHADOW MATCH\t")
	for _, r := range rep.Routes {
		stage := r.Stage
		if r.Stage == string(migration.StageCanary) {
			stage = fmt.Sprintf("canary %g%%", r.CanaryPercent)
		}
		share, match := "-", "-"
		if r.New != "" {
			share = fmt.Sprintf("%.1f%%", r.NewShare*100)
		}
		if r.Shadow != nil {
			match = fmt.Sprintf("%.1f%% of %d", r.Shadow.MatchRate*100, r.Shadow.Compared)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t(all)\t\t%d\t%.1f%%\t\t\t%s\t%s\t\n", r.Pattern, stage, r.Since.Local().Format("01-02 15:04"), r.Requests, r.ErrorRate*100, share, match)
		for _, a := range r.Apps {
			fmt.Fprintf(tw, "\t\t\t%s\t%s\t%d\t%.1f%%\t%.1fms\t%.1fms\t\t\t\n", a.App, a.Role, a.Requests, a.ErrorRate*100, a.P50ms, a.P99ms)
		}
	}
	tw.Flush()
	for _, r := range rep.Routes {
		if r.FellBack > 0 {
			fmt.Fprintf(w, "\n%s fell back to old: %d (requests the new app never received: connection not opened, no instance)\n", r.Pattern, r.FellBack)
		}
		if r.NegativeCache != nil {
			fmt.Fprintf(w, "\n%s negative cache: %d round trips saved, %d paths held\n", r.Pattern, r.NegativeCache.Saved, r.NegativeCache.Entries)
		}
		if r.Shadow == nil {
			continue
		}
		s := r.Shadow
		fmt.Fprintf(w, "\n%s shadow: %.1f%% matched of %d compared (%d mismatched, %d without an answer), %d dropped, %d skipped\n",
			r.Pattern, s.MatchRate*100, s.Compared, s.Mismatched, s.Errors, s.Dropped, s.Skipped)
		fmt.Fprintf(w, "  compared: %s\n", strings.Join(s.Parts, "; "))
		for _, c := range s.Causes {
			fmt.Fprintf(w, "  %6d  %s\n", c.Count, c.Cause)
		}
		for i, m := range s.Mismatches {
			if i == 5 {
				fmt.Fprintf(w, "  ... %d more on the /migration page\n", len(s.Mismatches)-i)
				break
			}
			fmt.Fprintf(w, "  %s %s\n", m.Method, m.Path)
			for _, d := range m.Diff {
				fmt.Fprintf(w, "    %s\n", d)
			}
		}
	}
	if len(rep.Ledger) > 0 {
		fmt.Fprintln(w, "\nledger (which app answered):")
		lw := tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
		fmt.Fprintln(lw, "METHOD\tROUTE\tPATH\tREQUESTS\tANSWERED BY")
		for i, l := range rep.Ledger {
			if i == 30 {
				fmt.Fprintf(lw, "...\t\t%d more rows\t\t\n", len(rep.Ledger)-i)
				break
			}
			var by []string
			for app, n := range l.Answers {
				by = append(by, fmt.Sprintf("%s: %d", app, n))
			}
			sortStrings(by)
			fmt.Fprintf(lw, "%s\t%s\t%s\t%d\t%s\n", l.Method, l.Route, l.Path, l.Total, strings.Join(by, ", "))
		}
		lw.Flush()
	}
}

func sortStrings(s []string) {
	for i := 1; i < len(s); i++ {
		for j := i; j > 0 && s[j] < s[j-1]; j-- {
			s[j], s[j-1] = s[j-1], s[j]
		}
	}
}

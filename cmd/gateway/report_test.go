package main

import (
	"bytes"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/switchyard/switchyard/migration"
)

// TestReportSaysWhereTheAdminAddressCameFrom checks that `gateway report` names the source of the address it
// asks: a user whose gateway listens elsewhere learns from the message which setting to change.
func TestReportSaysWhereTheAdminAddressCameFrom(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "gw.yaml")
	if err := os.WriteFile(file, []byte("primary: status:200\nadmin_addr: 127.0.0.1:19901\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	bad := filepath.Join(dir, "bad.yaml")
	if err := os.WriteFile(bad, []byte("primery: http://127.0.0.1:8000\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name     string
		env      map[string]string
		addr     string
		fromHas  []string
		fromLack string
	}{
		{"nothing set: the default, and how to change it", map[string]string{}, "127.0.0.1:9901", []string{"the default", "GATEWAY_ADMIN_ADDR", "GATEWAY_CONFIG", "admin_addr"}, ""},
		{"the variable", map[string]string{"GATEWAY_ADMIN_ADDR": "127.0.0.1:7000"}, "127.0.0.1:7000", []string{"GATEWAY_ADMIN_ADDR"}, "default"},
		{"the file's key, with its line", map[string]string{"GATEWAY_CONFIG": file}, "127.0.0.1:19901", []string{file + ":2: admin_addr"}, "default"},
		{"a configuration that does not load: the default, and why", map[string]string{"GATEWAY_CONFIG": bad}, "127.0.0.1:9901", []string{"the default", "does not load", "primery"}, ""},
		{"a configuration that does not load but sets the variable: the variable", map[string]string{"GATEWAY_CONFIG": bad, "GATEWAY_ADMIN_ADDR": "127.0.0.1:7001"}, "127.0.0.1:7001", []string{"GATEWAY_ADMIN_ADDR"}, "default"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			addr, from := reportAddr(tt.env)
			if addr != tt.addr {
				t.Errorf("address %q, want %q", addr, tt.addr)
			}
			for _, want := range tt.fromHas {
				if !strings.Contains(from, want) {
					t.Errorf("source %q lacks %q", from, want)
				}
			}
			if tt.fromLack != "" && strings.Contains(from, tt.fromLack) {
				t.Errorf("source %q says %q", from, tt.fromLack)
			}
		})
	}

	t.Run("an unreachable listener's message names the address and its source", func(t *testing.T) {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr := ln.Addr().String()
		ln.Close() // nothing listens there now
		var out, errb bytes.Buffer
		if code := report([]string{"GATEWAY_ADMIN_ADDR=" + addr}, &out, &errb); code != 1 {
			t.Fatalf("exit %d, want 1; stderr %q", code, errb.String())
		}
		if want := "cannot reach the admin listener at " + addr + " (GATEWAY_ADMIN_ADDR): "; !strings.Contains(errb.String(), want) {
			t.Errorf("stderr %q lacks %q", errb.String(), want)
		}
	})
}

func TestReportTextSaysHowManyRequestsFellBackToTheOldApp(t *testing.T) {
	var out bytes.Buffer
	printReport(&out, migration.Report{Routes: []migration.RouteReport{
		{Pattern: "/shop/", Stage: "canary", New: "shop", Old: "django", FellBack: 7},
		{Pattern: "/blog/", Stage: "primary", New: "blog", Old: "django"},
	}})
	if !strings.Contains(out.String(), "/shop/ fell back to old: 7 ") || strings.Contains(out.String(), "/blog/ fell back") {
		t.Fatalf("want the fall backs of /shop/ only:\n%s", out.String())
	}
}

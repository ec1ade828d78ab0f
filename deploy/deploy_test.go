// Package deploy_test checks the deployment files (deploy/Dockerfile, docker-compose.yml, deploy/kubernetes,
// deploy/systemd) against the binary, without a Docker engine or a cluster: every file parses, every
// GATEWAY_ variable is one the binary knows and its value passes `gateway check`, ports and probes match the
// binary's defaults, the Dockerfile's `go build` line yields a static binary, and the composition of
// docker-compose.yml runs as local processes (compose_e2e_test.go).
package deploy_test

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/switchyard/switchyard/config"
	"github.com/switchyard/switchyard/internal/testpeer"
)

// pendingVariables are GATEWAY_ variables the deployment files set for features other engineers are
// building at the same time. While config.Variables() does not list one yet, the checks drop it with a
// log line rather than fail; once the binary knows it, it is checked like every other variable.
var pendingVariables = map[string]string{
	"GATEWAY_ADMIN_ADDR": "the admin listener (/healthz, /readyz, /metrics)",
}

// adminDefaultPort is the admin listener's documented default port (GATEWAY_ADMIN_ADDR=127.0.0.1:9901).
// When config.Defaults() carries the admin address, checkAdminDefault compares the two.
const adminDefaultPort = 9901

// repoRoot is the module root.
var repoRoot = testpeer.RepoRoot()

func repoPath(rel ...string) string { return filepath.Join(append([]string{repoRoot}, rel...)...) }

// knownVariables returns the set of variables the binary reads.
func knownVariables() map[string]bool {
	m := map[string]bool{}
	for _, v := range config.Variables() {
		m[v] = true
	}
	return m
}

// checkVariables fails the test for every GATEWAY_ variable in env the binary does not know, and returns
// env without pending variables the binary does not know yet. where names the file for messages.
func checkVariables(t *testing.T, where string, env map[string]string) map[string]string {
	t.Helper()
	known := knownVariables()
	out := map[string]string{}
	for k, v := range env {
		switch {
		case !strings.HasPrefix(k, "GATEWAY_"):
			out[k] = v
		case known[k]:
			out[k] = v
		case pendingVariables[k] != "":
			t.Logf("%s: %s (%s) is not known to this binary yet; left out of the check", where, k, pendingVariables[k])
		default:
			t.Errorf("%s: %s is not a variable the gateway reads (known: %s)", where, k, strings.Join(config.Variables(), ", "))
		}
	}
	return out
}

// configDefault returns the default value of the config field read from variable name, formatted as text,
// and whether config.Config has such a field.
func configDefault(name string) (string, bool) {
	d := config.Defaults()
	v := reflect.ValueOf(d)
	for i := 0; i < v.NumField(); i++ {
		if v.Type().Field(i).Tag.Get("env") != name {
			continue
		}
		f := v.Field(i).Interface()
		if m, ok := f.(interface{ MarshalText() ([]byte, error) }); ok {
			b, err := m.MarshalText()
			return string(b), err == nil
		}
		return fmt.Sprint(f), true
	}
	return "", false
}

// portOf returns the port of a host:port address.
func portOf(t *testing.T, what, addr string) int {
	t.Helper()
	_, p, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatalf("%s: %q is not host:port: %v", what, addr, err)
	}
	n, err := strconv.Atoi(p)
	if err != nil {
		t.Fatalf("%s: %q: port %q is not a number", what, addr, p)
	}
	return n
}

// frontDefaultPort is the port of the binary's default GATEWAY_ADDR.
func frontDefaultPort(t *testing.T) int {
	return portOf(t, "config.Defaults().Addr", config.Defaults().Addr)
}

// adminPort returns the admin listener's default port: from config.Defaults() when the binary has one, else
// the documented adminDefaultPort.
func adminPort(t *testing.T) int {
	if addr, ok := configDefault("GATEWAY_ADMIN_ADDR"); ok {
		return portOf(t, "default GATEWAY_ADMIN_ADDR", addr)
	}
	return adminDefaultPort
}

// duration reads a GATEWAY_SHUTDOWN_TIMEOUT-style value, or the binary's default when unset.
func shutdownTimeout(t *testing.T, where string, env map[string]string) time.Duration {
	t.Helper()
	s, ok := env["GATEWAY_SHUTDOWN_TIMEOUT"]
	if !ok {
		s, _ = configDefault("GATEWAY_SHUTDOWN_TIMEOUT")
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		t.Fatalf("%s: GATEWAY_SHUTDOWN_TIMEOUT=%q: %v", where, s, err)
	}
	return d
}

// The gateway binary, built once per test run from deploy/Dockerfile's own `go build` line.
var built struct {
	once    sync.Once
	dir     string
	path    string
	version string
	err     error
}

// testVersion is what the tests pass as the Dockerfile's VERSION build argument.
const testVersion = "deploy-test-1.2.3"

func TestMain(m *testing.M) {
	code := m.Run()
	if built.dir != "" {
		os.RemoveAll(built.dir)
	}
	os.Exit(code)
}

// gatewayBinary returns the binary built by deploy/Dockerfile's build line (see buildFromDockerfile).
func gatewayBinary(t *testing.T) string {
	t.Helper()
	built.once.Do(func() {
		built.dir, built.err = os.MkdirTemp("", "switchyard-deploy")
		if built.err != nil {
			return
		}
		built.path, built.err = buildFromDockerfile(repoPath("deploy", "Dockerfile"), built.dir, testVersion)
		built.version = testVersion
	})
	if built.err != nil {
		t.Fatalf("building the gateway as deploy/Dockerfile does: %v", built.err)
	}
	return built.path
}

// buildFromDockerfile runs the RUN line of dockerfile that holds `go build`, outside Docker: the
// instruction is split into words as /bin/sh would, with ARG defaults (VERSION overridden by version)
// expanded, leading NAME=value words become the environment, and the -o target is moved into outDir. The
// build runs in the repository root, which is the image's build context.
func buildFromDockerfile(dockerfile, outDir, version string) (string, error) {
	df, err := parseDockerfile(dockerfile)
	if err != nil {
		return "", err
	}
	run, ok := df.buildStep()
	if !ok {
		return "", fmt.Errorf("%s: no RUN instruction with `go build`", dockerfile)
	}
	args := df.argDefaults(run.stage)
	args["VERSION"] = version
	words, err := shellWords(run.args, func(name string) string { return args[name] })
	if err != nil {
		return "", fmt.Errorf("%s:%d: %v", dockerfile, run.line, err)
	}
	var env []string
	for len(words) > 0 && isAssignment(words[0]) {
		env = append(env, words[0])
		words = words[1:]
	}
	if len(words) < 2 || words[0] != "go" || words[1] != "build" {
		return "", fmt.Errorf("%s:%d: expected NAME=value... go build ..., got %q", dockerfile, run.line, words)
	}
	out := filepath.Join(outDir, "gateway")
	found := false
	for i := 2; i < len(words)-1; i++ {
		if words[i] == "-o" {
			words[i+1], found = out, true
		}
	}
	if !found {
		return "", fmt.Errorf("%s:%d: the go build line has no -o OUTPUT", dockerfile, run.line)
	}
	goBin, err := exec.LookPath("go")
	if err != nil {
		goBin = filepath.Join(goRoot(), "bin", "go")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, goBin, words[1:]...)
	cmd.Dir = repoRoot
	cmd.Env = append(os.Environ(), env...)
	if b, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("%s %s: %v\n%s", strings.Join(env, " "), strings.Join(words, " "), err, b)
	}
	return out, nil
}

func goRoot() string {
	if r := os.Getenv("GOROOT"); r != "" {
		return r
	}
	return "/usr/local/go"
}

func isAssignment(w string) bool {
	name, _, ok := strings.Cut(w, "=")
	if !ok || name == "" {
		return false
	}
	for i, c := range name {
		if !(c == '_' || c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || i > 0 && c >= '0' && c <= '9') {
			return false
		}
	}
	return true
}

// gatewayCheck runs `gateway check` with exactly env (plus PATH and HOME) and fails the test with its output
// unless it accepts the configuration.
func gatewayCheck(t *testing.T, where string, env map[string]string) string {
	t.Helper()
	bin := gatewayBinary(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, "check")
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + t.TempDir()}
	keys := make([]string, 0, len(env))
	for k := range env {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		cmd.Env = append(cmd.Env, k+"="+env[k])
	}
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		t.Errorf("%s: `gateway check` refuses the configuration (%v):\n%s\nenvironment: %q", where, err, out.String(), cmd.Env)
		return out.String()
	}
	if !strings.Contains(out.String(), "configuration ok") {
		t.Errorf("%s: `gateway check` did not say \"configuration ok\":\n%s", where, out.String())
	}
	return out.String()
}

// checkAdminDefault checks that a deployment's admin address uses the binary's admin port.
func checkAdminDefault(t *testing.T, where string, env map[string]string) {
	t.Helper()
	addr, ok := env["GATEWAY_ADMIN_ADDR"]
	if !ok {
		t.Errorf("%s: GATEWAY_ADMIN_ADDR is not set: probes need the admin listener on a reachable address", where)
		return
	}
	if got, want := portOf(t, where+": GATEWAY_ADMIN_ADDR", addr), adminPort(t); got != want {
		t.Errorf("%s: GATEWAY_ADMIN_ADDR=%q: port %d, want the binary's admin port %d", where, addr, got, want)
	}
}

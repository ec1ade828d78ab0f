package deploy_test

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v4"
)

// composeFile is the part of the Compose specification docker-compose.yml uses. Fields the file does not
// use are absent on purpose: decoding runs with known-fields checking, so a new key must be added here (and
// thought about) before the file may use it.
type composeFile struct {
	Name     string                    `yaml:"name"`
	Services map[string]composeService `yaml:"services"`
	Volumes  map[string]any            `yaml:"volumes"`
}

type composeService struct {
	Build *struct {
		Context    string            `yaml:"context"`
		Dockerfile string            `yaml:"dockerfile"`
		Args       map[string]string `yaml:"args"`
	} `yaml:"build"`
	Image       string            `yaml:"image"`
	Environment map[string]string `yaml:"environment"`
	Ports       []string          `yaml:"ports"`
	Expose      []string          `yaml:"expose"`
	Volumes     []string          `yaml:"volumes"`
	Tmpfs       []string          `yaml:"tmpfs"`
	ReadOnly    bool              `yaml:"read_only"`
	CapDrop     []string          `yaml:"cap_drop"`
	SecurityOpt []string          `yaml:"security_opt"`
	Healthcheck *struct {
		Test        []string `yaml:"test"`
		Interval    string   `yaml:"interval"`
		Timeout     string   `yaml:"timeout"`
		Retries     int      `yaml:"retries"`
		StartPeriod string   `yaml:"start_period"`
	} `yaml:"healthcheck"`
	DependsOn map[string]struct {
		Condition string `yaml:"condition"`
	} `yaml:"depends_on"`
	StopGracePeriod string `yaml:"stop_grace_period"`
	Restart         string `yaml:"restart"`
}

// gatewayService is the name of the gateway in docker-compose.yml.
const gatewayService = "gateway"

// loadCompose parses docker-compose.yml (every document; it must hold exactly one).
func loadCompose(t *testing.T) composeFile {
	t.Helper()
	docs := decodeAll[composeFile](t, repoPath("docker-compose.yml"), true)
	if len(docs) != 1 {
		t.Fatalf("docker-compose.yml: %d YAML documents, want 1", len(docs))
	}
	return docs[0]
}

// decodeAll decodes every YAML document of file into T, with known-fields checking when strict (Kubernetes
// objects have far more fields than the checks read, so manifests are decoded loosely).
func decodeAll[T any](t *testing.T, file string, strict bool) []T {
	t.Helper()
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(strict)
	var out []T
	for {
		var v T
		err := dec.Decode(&v)
		if errors.Is(err, io.EOF) {
			return out
		}
		if err != nil {
			t.Fatalf("%s: %v", file, err)
		}
		out = append(out, v)
	}
}

// mount is one "SOURCE:TARGET[:MODE]" volume entry.
type mount struct {
	source, target string
	readOnly, bind bool // bind: source is a host path, else a named volume
}

func parseMount(s string) (mount, error) {
	parts := strings.Split(s, ":")
	if len(parts) < 2 || len(parts) > 3 || parts[0] == "" || !strings.HasPrefix(parts[1], "/") {
		return mount{}, fmt.Errorf("volume %q: expected SOURCE:/TARGET[:ro]", s)
	}
	m := mount{source: parts[0], target: parts[1], bind: strings.HasPrefix(parts[0], ".") || strings.HasPrefix(parts[0], "/")}
	if len(parts) == 3 {
		switch parts[2] {
		case "ro":
			m.readOnly = true
		case "rw":
		default:
			return mount{}, fmt.Errorf("volume %q: mode %q, expected ro or rw", s, parts[2])
		}
	}
	return m, nil
}

// appURL matches the scheme and host:port of each app URL in GATEWAY_PRIMARY, GATEWAY_DELEGATES and
// GATEWAY_ROUTES values.
var appURL = regexp.MustCompile(`([a-z][a-z0-9+.-]*)://([A-Za-z0-9.-]+):([0-9]+)`)

// hostPath maps the gateway's container paths in env values to host directories: each bind mount to its
// host source, each named volume to what named(volume) returns. It returns env with those paths replaced
// (as whole path prefixes), which is what `gateway check` on the host can open.
func hostPaths(t *testing.T, svc composeService, env map[string]string, named func(volume string) string) map[string]string {
	t.Helper()
	repl := map[string]string{}
	for _, v := range svc.Volumes {
		m, err := parseMount(v)
		if err != nil {
			t.Fatal(err)
		}
		if m.bind {
			repl[m.target] = repoPath(m.source)
		} else {
			repl[m.target] = named(m.source)
		}
	}
	out := map[string]string{}
	for k, v := range env {
		for from, to := range repl {
			v = regexp.MustCompile(regexp.QuoteMeta(from)+`(/|$|[?&,\s])`).ReplaceAllString(v, strings.ReplaceAll(to, "$", "$$")+"$1")
		}
		out[k] = v
	}
	return out
}

func TestCompose(t *testing.T) {
	c := loadCompose(t)
	gw, ok := c.Services[gatewayService]
	if !ok {
		t.Fatalf("docker-compose.yml has no %q service", gatewayService)
	}
	env := gw.Environment

	tests := []struct {
		name  string
		check func(t *testing.T)
	}{
		{"every service is built from a Dockerfile that exists", func(t *testing.T) {
			for name, s := range c.Services {
				if s.Build == nil {
					t.Errorf("service %s: no build section", name)
					continue
				}
				ctx := repoPath(s.Build.Context)
				if fi, err := os.Stat(ctx); err != nil || !fi.IsDir() {
					t.Errorf("service %s: build context %s is not a directory", name, s.Build.Context)
				}
				df := s.Build.Dockerfile
				if df == "" {
					df = "Dockerfile"
				}
				if _, err := parseDockerfile(filepath.Join(ctx, df)); err != nil {
					t.Errorf("service %s: Dockerfile: %v", name, err)
				}
			}
			if gw.Build != nil && filepath.Join(gw.Build.Context, gw.Build.Dockerfile) != "deploy/Dockerfile" {
				t.Errorf("the gateway is built from %s/%s, want deploy/Dockerfile in the repository root", gw.Build.Context, gw.Build.Dockerfile)
			}
		}},
		{"the gateway sets only variables the binary knows and they pass gateway check", func(t *testing.T) {
			for k := range env {
				if !strings.HasPrefix(k, "GATEWAY_") {
					t.Errorf("gateway environment sets %s: the gateway is wired only through GATEWAY_* variables", k)
				}
			}
			mapped := hostPaths(t, gw, checkVariables(t, "docker-compose.yml", env), func(string) string { return t.TempDir() })
			gatewayCheck(t, "docker-compose.yml", mapped)
		}},
		{"every app URL names a service and a port its Dockerfile exposes", func(t *testing.T) {
			seen := 0
			for _, k := range []string{"GATEWAY_PRIMARY", "GATEWAY_DELEGATES", "GATEWAY_ROUTES"} {
				for _, m := range appURL.FindAllStringSubmatch(env[k], -1) {
					seen++
					host, port := m[2], m[3]
					s, ok := c.Services[host]
					if !ok {
						t.Errorf("%s: %s names host %s, which is no service", k, m[0], host)
						continue
					}
					if !slices.Contains(s.Expose, port) {
						t.Errorf("%s: %s: service %s exposes %v, not %s", k, m[0], host, s.Expose, port)
					}
					df, err := parseDockerfile(filepath.Join(repoPath(s.Build.Context), "Dockerfile"))
					if err != nil {
						t.Fatal(err)
					}
					ports, err := df.exposed(df.finalStage())
					if err != nil {
						t.Fatal(err)
					}
					if p, _ := strconv.Atoi(port); !slices.Contains(ports, p) {
						t.Errorf("%s: %s: %s's Dockerfile exposes %v, not %s", k, m[0], host, ports, port)
					}
				}
			}
			if seen < len(c.Services)-1 {
				t.Errorf("%d app URLs for %d apps: every app should be routed", seen, len(c.Services)-1)
			}
		}},
		{"the composition puts Django first and mounts Flask, PHP and Node under prefixes", func(t *testing.T) {
			if u, err := url.Parse(env["GATEWAY_PRIMARY"]); err != nil || u.Scheme != "http" || u.Host != "django:8000" {
				t.Errorf("GATEWAY_PRIMARY=%q, want http://django:8000", env["GATEWAY_PRIMARY"])
			}
			routes := map[string]string{}
			for _, r := range strings.Split(env["GATEWAY_ROUTES"], ",") {
				p, app, _ := strings.Cut(strings.TrimSpace(r), "=")
				routes[p] = app
			}
			want := map[string]struct{ scheme, host, opts string }{
				"/flask/": {"http", "flask:8000", "strip_prefix=true"},
				"/php/":   {"fastcgi", "php:9000", "root=/var/www/html"},
				"/node/":  {"http", "node:3000", "strip_prefix=true"},
			}
			for p, w := range want {
				u, err := url.Parse(routes[p])
				if err != nil || u.Scheme != w.scheme || u.Host != w.host || !strings.Contains(u.RawQuery, w.opts) {
					t.Errorf("route %s=%s, want %s://%s?...%s...", p, routes[p], w.scheme, w.host, w.opts)
				}
			}
		}},
		{"the gateway publishes the binary's front and admin ports", func(t *testing.T) {
			front := portOf(t, "GATEWAY_ADDR", env["GATEWAY_ADDR"])
			if front != frontDefaultPort(t) {
				t.Errorf("GATEWAY_ADDR=%q, want the default port %d", env["GATEWAY_ADDR"], frontDefaultPort(t))
			}
			checkAdminDefault(t, "docker-compose.yml", env)
			var published []int
			for _, p := range gw.Ports {
				f := strings.Split(p, ":")
				n, err := strconv.Atoi(f[len(f)-1])
				if err != nil {
					t.Errorf("ports entry %q: container port is not a number", p)
				}
				published = append(published, n)
			}
			for _, want := range []int{front, adminPort(t)} {
				if !slices.Contains(published, want) {
					t.Errorf("ports %v do not publish container port %d", gw.Ports, want)
				}
			}
			for _, p := range gw.Ports {
				if strings.HasSuffix(p, ":"+strconv.Itoa(adminPort(t))) && !strings.HasPrefix(p, "127.0.0.1:") {
					t.Errorf("ports entry %q publishes the admin port beyond the host's loopback", p)
				}
			}
		}},
		{"the gateway waits for every app to be healthy", func(t *testing.T) {
			for name, s := range c.Services {
				if name == gatewayService {
					continue
				}
				if s.Healthcheck == nil || len(s.Healthcheck.Test) < 2 || s.Healthcheck.Test[0] != "CMD" {
					t.Errorf("service %s: no healthcheck in exec form", name)
				}
				if d, ok := gw.DependsOn[name]; !ok || d.Condition != "service_healthy" {
					t.Errorf("gateway depends_on %s: condition %q, want service_healthy", name, d.Condition)
				}
			}
		}},
		{"docker stop waits longer than the gateway's drain", func(t *testing.T) {
			grace, err := time.ParseDuration(gw.StopGracePeriod)
			if err != nil {
				t.Fatalf("stop_grace_period %q: %v (Docker's default 10s is shorter than the drain)", gw.StopGracePeriod, err)
			}
			if drain := shutdownTimeout(t, "docker-compose.yml", env); grace <= drain {
				t.Errorf("stop_grace_period %v is not longer than GATEWAY_SHUTDOWN_TIMEOUT %v", grace, drain)
			}
		}},
		{"the gateway runs read-only with a writable /tmp and no capabilities", func(t *testing.T) {
			if !gw.ReadOnly || !slices.Contains(gw.Tmpfs, "/tmp") {
				t.Errorf("read_only %v, tmpfs %v: want a read-only root with /tmp on tmpfs (bodies are spooled there)", gw.ReadOnly, gw.Tmpfs)
			}
			if !slices.Contains(gw.CapDrop, "ALL") {
				t.Errorf("cap_drop %v, want ALL", gw.CapDrop)
			}
			for _, v := range gw.Volumes {
				m, err := parseMount(v)
				if err != nil {
					t.Error(err)
				} else if !m.readOnly {
					t.Errorf("volume %q: the gateway only reads app files: mount it :ro", v)
				}
			}
		}},
		{"every volume exists", func(t *testing.T) {
			for name, s := range c.Services {
				for _, v := range s.Volumes {
					m, err := parseMount(v)
					if err != nil {
						t.Error(err)
						continue
					}
					if m.bind {
						if _, err := os.Stat(repoPath(m.source)); err != nil {
							t.Errorf("service %s: bind mount source %s: %v", name, m.source, err)
						}
					} else if _, ok := c.Volumes[m.source]; !ok {
						t.Errorf("service %s: named volume %s is not declared under volumes:", name, m.source)
					}
				}
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, tt.check)
	}
}

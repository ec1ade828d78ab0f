package deploy_test

import (
	"context"
	"maps"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v4"
)

// k8sObject is any Kubernetes manifest; Spec is decoded per kind.
type k8sObject struct {
	APIVersion string `yaml:"apiVersion"`
	Kind       string `yaml:"kind"`
	Metadata   struct {
		Name        string            `yaml:"name"`
		Labels      map[string]string `yaml:"labels"`
		Annotations map[string]string `yaml:"annotations"`
	} `yaml:"metadata"`
	Data map[string]string `yaml:"data"`
	Spec yaml.Node         `yaml:"spec"`
	file string
}

type labelSelector struct {
	MatchLabels map[string]string `yaml:"matchLabels"`
}

type probe struct {
	HTTPGet *struct {
		Path string `yaml:"path"`
		Port any    `yaml:"port"` // a name or a number
	} `yaml:"httpGet"`
}

type container struct {
	Name    string   `yaml:"name"`
	Image   string   `yaml:"image"`
	Args    []string `yaml:"args"`
	EnvFrom []struct {
		ConfigMapRef *struct {
			Name string `yaml:"name"`
		} `yaml:"configMapRef"`
	} `yaml:"envFrom"`
	Env []struct {
		Name  string `yaml:"name"`
		Value string `yaml:"value"`
	} `yaml:"env"`
	Ports []struct {
		Name          string `yaml:"name"`
		ContainerPort int    `yaml:"containerPort"`
	} `yaml:"ports"`
	ReadinessProbe *probe `yaml:"readinessProbe"`
	LivenessProbe  *probe `yaml:"livenessProbe"`
	Lifecycle      *struct {
		PreStop *struct {
			Sleep *struct {
				Seconds int `yaml:"seconds"`
			} `yaml:"sleep"`
		} `yaml:"preStop"`
	} `yaml:"lifecycle"`
	Resources struct {
		Requests map[string]string `yaml:"requests"`
		Limits   map[string]string `yaml:"limits"`
	} `yaml:"resources"`
	SecurityContext *struct {
		AllowPrivilegeEscalation *bool `yaml:"allowPrivilegeEscalation"`
		ReadOnlyRootFilesystem   bool  `yaml:"readOnlyRootFilesystem"`
		RunAsNonRoot             bool  `yaml:"runAsNonRoot"`
		Capabilities             struct {
			Drop []string `yaml:"drop"`
		} `yaml:"capabilities"`
	} `yaml:"securityContext"`
	VolumeMounts []struct {
		Name      string `yaml:"name"`
		MountPath string `yaml:"mountPath"`
	} `yaml:"volumeMounts"`
}

type deploymentSpec struct {
	Replicas int           `yaml:"replicas"`
	Selector labelSelector `yaml:"selector"`
	Template struct {
		Metadata struct {
			Labels map[string]string `yaml:"labels"`
		} `yaml:"metadata"`
		Spec struct {
			TerminationGracePeriodSeconds *int `yaml:"terminationGracePeriodSeconds"`
			SecurityContext               struct {
				RunAsNonRoot bool `yaml:"runAsNonRoot"`
				RunAsUser    int  `yaml:"runAsUser"`
			} `yaml:"securityContext"`
			Containers []container `yaml:"containers"`
			Volumes    []struct {
				Name     string `yaml:"name"`
				EmptyDir any    `yaml:"emptyDir"`
			} `yaml:"volumes"`
		} `yaml:"spec"`
	} `yaml:"template"`
}

type serviceSpec struct {
	Selector map[string]string `yaml:"selector"`
	Ports    []struct {
		Name       string `yaml:"name"`
		Port       int    `yaml:"port"`
		TargetPort any    `yaml:"targetPort"`
	} `yaml:"ports"`
}

type pdbSpec struct {
	MinAvailable   any           `yaml:"minAvailable"`
	MaxUnavailable any           `yaml:"maxUnavailable"`
	Selector       labelSelector `yaml:"selector"`
}

type hpaSpec struct {
	ScaleTargetRef struct {
		Kind string `yaml:"kind"`
		Name string `yaml:"name"`
	} `yaml:"scaleTargetRef"`
	MinReplicas int `yaml:"minReplicas"`
	MaxReplicas int `yaml:"maxReplicas"`
}

type kustomization struct {
	Resources []string `yaml:"resources"`
	Images    []struct {
		Name    string `yaml:"name"`
		NewName string `yaml:"newName"`
		NewTag  string `yaml:"newTag"`
	} `yaml:"images"`
}

// loadManifests parses every manifest in deploy/kubernetes (all documents of every .yaml file except the
// kustomization) and the kustomization itself.
func loadManifests(t *testing.T) (map[string]*k8sObject, kustomization, []string) {
	t.Helper()
	dir := repoPath("deploy", "kubernetes")
	files, err := filepath.Glob(filepath.Join(dir, "*.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	objs := map[string]*k8sObject{}
	var kz kustomization
	var names []string
	for _, f := range files {
		base := filepath.Base(f)
		if base == "kustomization.yaml" {
			ks := decodeAll[kustomization](t, f, false)
			if len(ks) != 1 {
				t.Fatalf("%s: %d documents, want 1", base, len(ks))
			}
			kz = ks[0]
			continue
		}
		names = append(names, base)
		for _, o := range decodeAll[k8sObject](t, f, false) {
			o.file = base
			if o.APIVersion == "" || o.Kind == "" || o.Metadata.Name == "" {
				t.Fatalf("%s: a document without apiVersion, kind or metadata.name", base)
			}
			if prev, dup := objs[o.Kind]; dup {
				t.Fatalf("%s and %s both hold a %s: the checks expect one of each", prev.file, base, o.Kind)
			}
			objs[o.Kind] = &o
		}
	}
	return objs, kz, names
}

func decodeSpec[T any](t *testing.T, o *k8sObject) T {
	t.Helper()
	var v T
	if err := o.Spec.Decode(&v); err != nil {
		t.Fatalf("%s: %s spec: %v", o.file, o.Kind, err)
	}
	return v
}

// selects reports whether selector's labels are all among labels (and selector is not empty).
func selects(selector, labels map[string]string) bool {
	if len(selector) == 0 {
		return false
	}
	for k, v := range selector {
		if labels[k] != v {
			return false
		}
	}
	return true
}

func TestKubernetes(t *testing.T) {
	objs, kz, files := loadManifests(t)
	for _, kind := range []string{"Deployment", "Service", "ConfigMap", "PodDisruptionBudget", "HorizontalPodAutoscaler"} {
		if objs[kind] == nil {
			t.Fatalf("deploy/kubernetes has no %s", kind)
		}
	}
	dep := decodeSpec[deploymentSpec](t, objs["Deployment"])
	cm := objs["ConfigMap"]
	svc := decodeSpec[serviceSpec](t, objs["Service"])
	pdb := decodeSpec[pdbSpec](t, objs["PodDisruptionBudget"])
	hpa := decodeSpec[hpaSpec](t, objs["HorizontalPodAutoscaler"])
	if len(dep.Template.Spec.Containers) != 1 {
		t.Fatalf("Deployment: %d containers, want the gateway alone", len(dep.Template.Spec.Containers))
	}
	c := dep.Template.Spec.Containers[0]
	podLabels := dep.Template.Metadata.Labels
	ports := map[string]int{}
	for _, p := range c.Ports {
		ports[p.Name] = p.ContainerPort
	}
	// portNumber resolves a probe's or Service's port (a name or a number) against the container's ports.
	portNumber := func(p any) int {
		switch v := p.(type) {
		case string:
			return ports[v]
		case int:
			return v
		}
		return 0
	}

	tests := []struct {
		name  string
		check func(t *testing.T)
	}{
		{"the kustomization lists every manifest and only those", func(t *testing.T) {
			if got, want := slices.Sorted(slices.Values(kz.Resources)), slices.Sorted(slices.Values(files)); !slices.Equal(got, want) {
				t.Errorf("kustomization resources %v, files %v", got, want)
			}
			found := false
			for _, im := range kz.Images {
				found = found || im.Name == c.Image
			}
			if !found {
				t.Errorf("kustomization images do not name the container image %q: it could not be set per environment", c.Image)
			}
		}},
		{"kustomize renders the directory", func(t *testing.T) {
			kubectl, err := exec.LookPath("kubectl")
			if err != nil {
				t.Skip("kubectl not installed; the manifests were parsed above")
			}
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			out, err := exec.CommandContext(ctx, kubectl, "kustomize", repoPath("deploy", "kubernetes")).CombinedOutput()
			if err != nil {
				t.Fatalf("kubectl kustomize: %v\n%s", err, out)
			}
			for _, kind := range slices.Sorted(maps.Keys(objs)) {
				if !strings.Contains(string(out), "kind: "+kind+"\n") {
					t.Errorf("rendered output lacks the %s", kind)
				}
			}
		}},
		{"the ConfigMap sets only variables the binary knows and they pass gateway check", func(t *testing.T) {
			for k := range cm.Data {
				if !strings.HasPrefix(k, "GATEWAY_") {
					t.Errorf("ConfigMap key %s: the gateway reads only GATEWAY_* variables", k)
				}
			}
			gatewayCheck(t, "deploy/kubernetes/"+cm.file, checkVariables(t, cm.file, cm.Data))
			if cm.Data["GATEWAY_ROUTES"] == "" && cm.Data["GATEWAY_PRIMARY"] == "" {
				t.Error("the ConfigMap configures no app: the replicas would serve the built-in demo")
			}
		}},
		{"the container takes its configuration from the ConfigMap", func(t *testing.T) {
			ok := false
			for _, ef := range c.EnvFrom {
				ok = ok || ef.ConfigMapRef != nil && ef.ConfigMapRef.Name == cm.Metadata.Name
			}
			if !ok {
				t.Errorf("container envFrom does not reference ConfigMap %s", cm.Metadata.Name)
			}
			for _, e := range c.Env {
				if strings.HasPrefix(e.Name, "GATEWAY_") {
					t.Errorf("container env sets %s: keep the configuration in the ConfigMap", e.Name)
				}
			}
		}},
		{"several replicas run, selected by the pod labels", func(t *testing.T) {
			if dep.Replicas < 2 {
				t.Errorf("replicas %d, want several", dep.Replicas)
			}
			if !selects(dep.Selector.MatchLabels, podLabels) {
				t.Errorf("Deployment selector %v does not select its pods %v", dep.Selector.MatchLabels, podLabels)
			}
		}},
		{"container ports are the binary's front and admin ports as configured", func(t *testing.T) {
			if got, want := ports["http"], portOf(t, "GATEWAY_ADDR", cm.Data["GATEWAY_ADDR"]); got != want || want != frontDefaultPort(t) {
				t.Errorf("port http %d, GATEWAY_ADDR port %d, binary default %d: want all equal", got, want, frontDefaultPort(t))
			}
			checkAdminDefault(t, cm.file, cm.Data)
			if got, want := ports["admin"], adminPort(t); got != want {
				t.Errorf("port admin %d, want the binary's admin port %d", got, want)
			}
			if h, _, _ := strings.Cut(cm.Data["GATEWAY_ADMIN_ADDR"], ":"); h == "127.0.0.1" || h == "localhost" {
				t.Errorf("GATEWAY_ADMIN_ADDR=%q: the kubelet cannot probe a loopback address", cm.Data["GATEWAY_ADMIN_ADDR"])
			}
		}},
		{"readiness and liveness probe the admin port", func(t *testing.T) {
			for _, p := range []struct {
				name, path string
				probe      *probe
			}{{"readinessProbe", "/readyz", c.ReadinessProbe}, {"livenessProbe", "/healthz", c.LivenessProbe}} {
				if p.probe == nil || p.probe.HTTPGet == nil {
					t.Errorf("%s: missing or not httpGet", p.name)
					continue
				}
				if p.probe.HTTPGet.Path != p.path || portNumber(p.probe.HTTPGet.Port) != adminPort(t) {
					t.Errorf("%s: GET %s on port %v, want %s on the admin port %d", p.name, p.probe.HTTPGet.Path, p.probe.HTTPGet.Port, p.path, adminPort(t))
				}
			}
		}},
		{"requests and limits are set for CPU and memory", func(t *testing.T) {
			for _, r := range []string{"cpu", "memory"} {
				if c.Resources.Requests[r] == "" || c.Resources.Limits[r] == "" {
					t.Errorf("resources for %s: requests %q limits %q, want both", r, c.Resources.Requests[r], c.Resources.Limits[r])
				}
			}
		}},
		{"termination outlasts the preStop pause plus the drain", func(t *testing.T) {
			g := dep.Template.Spec.TerminationGracePeriodSeconds
			if g == nil {
				t.Fatal("terminationGracePeriodSeconds unset (default 30s)")
			}
			pause := 0
			if c.Lifecycle == nil || c.Lifecycle.PreStop == nil || c.Lifecycle.PreStop.Sleep == nil || c.Lifecycle.PreStop.Sleep.Seconds <= 0 {
				t.Error("no preStop sleep: SIGTERM would arrive while Services still send new connections")
			} else {
				pause = c.Lifecycle.PreStop.Sleep.Seconds
			}
			drain := shutdownTimeout(t, cm.file, cm.Data)
			if total := time.Duration(pause)*time.Second + drain; time.Duration(*g)*time.Second <= total {
				t.Errorf("terminationGracePeriodSeconds %d is not longer than preStop %ds + GATEWAY_SHUTDOWN_TIMEOUT %v", *g, pause, drain)
			}
		}},
		{"the pod runs as non-root on a read-only root filesystem with a writable /tmp", func(t *testing.T) {
			ps := dep.Template.Spec.SecurityContext
			sc := c.SecurityContext
			if !ps.RunAsNonRoot && (sc == nil || !sc.RunAsNonRoot) {
				t.Error("runAsNonRoot not set")
			}
			if ps.RunAsUser == 0 {
				t.Error("runAsUser unset or 0")
			}
			if sc == nil || !sc.ReadOnlyRootFilesystem || sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation || !slices.Contains(sc.Capabilities.Drop, "ALL") {
				t.Errorf("container securityContext %+v: want readOnlyRootFilesystem, allowPrivilegeEscalation false, drop ALL", sc)
			}
			tmp := ""
			for _, m := range c.VolumeMounts {
				if m.MountPath == "/tmp" {
					tmp = m.Name
				}
			}
			ok := false
			for _, v := range dep.Template.Spec.Volumes {
				ok = ok || v.Name == tmp && v.EmptyDir != nil
			}
			if !ok {
				t.Error("/tmp is not an emptyDir: bodies spooled to the temporary directory would fail on the read-only root")
			}
		}},
		{"the Service selects the pods and targets the front port", func(t *testing.T) {
			if !selects(svc.Selector, podLabels) {
				t.Errorf("Service selector %v does not select pods %v", svc.Selector, podLabels)
			}
			for _, p := range svc.Ports {
				if portNumber(p.TargetPort) != ports["http"] {
					t.Errorf("Service port %s targets %v, want the front port %d (the admin port stays private)", p.Name, p.TargetPort, ports["http"])
				}
			}
		}},
		{"the PodDisruptionBudget covers the pods and leaves some running", func(t *testing.T) {
			if !selects(pdb.Selector.MatchLabels, podLabels) {
				t.Errorf("PDB selector %v does not select pods %v", pdb.Selector.MatchLabels, podLabels)
			}
			switch {
			case pdb.MaxUnavailable != nil:
				if n, ok := pdb.MaxUnavailable.(int); ok && n >= dep.Replicas {
					t.Errorf("maxUnavailable %d allows evicting all %d replicas", n, dep.Replicas)
				}
			case pdb.MinAvailable != nil:
				if n, ok := pdb.MinAvailable.(int); ok && (n < 1 || n >= dep.Replicas) {
					t.Errorf("minAvailable %d with %d replicas: want 1..replicas-1", n, dep.Replicas)
				}
			default:
				t.Error("PDB sets neither minAvailable nor maxUnavailable")
			}
		}},
		{"the autoscaler scales the Deployment and never below several replicas", func(t *testing.T) {
			if hpa.ScaleTargetRef.Kind != "Deployment" || hpa.ScaleTargetRef.Name != objs["Deployment"].Metadata.Name {
				t.Errorf("HPA targets %s/%s", hpa.ScaleTargetRef.Kind, hpa.ScaleTargetRef.Name)
			}
			if hpa.MinReplicas < 2 || hpa.MinReplicas > dep.Replicas || hpa.MaxReplicas < hpa.MinReplicas {
				t.Errorf("HPA min %d max %d with %d replicas: want 2 <= min <= replicas <= max", hpa.MinReplicas, hpa.MaxReplicas, dep.Replicas)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, tt.check)
	}
}

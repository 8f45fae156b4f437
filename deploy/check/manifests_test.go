// Package check holds deploy/kubernetes to the real Kubernetes API types and to what
// wxlogin serves and reads. It is a module of its own so that the server's go.mod does
// not carry k8s.io/api. Run it with `make check-deploy`.
package check

import (
	"bytes"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	"sigs.k8s.io/yaml"
)

const dir = "../kubernetes"

// decode reads a manifest strictly into its API type: an unknown or misspelt field
// fails, as `kubectl apply --validate=strict` would.
func decode[T any](t *testing.T, file string) *T {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, file))
	if err != nil {
		t.Fatal(err)
	}
	if n := bytes.Count(b, []byte("\n---")); n > 0 {
		t.Fatalf("%s holds %d documents: one per file", file, n+1)
	}
	var v T
	if err := yaml.UnmarshalStrict(b, &v); err != nil {
		t.Fatalf("%s: %v", file, err)
	}
	return &v
}

// settings are the variables wxlogin reads: the names in its --help table.
func settings(t *testing.T) map[string]bool {
	b, err := os.ReadFile("../../internal/config/help.go")
	if err != nil {
		t.Fatal(err)
	}
	names := map[string]bool{}
	for _, m := range regexp.MustCompile(`\{"((?:WXLOGIN|WECHAT)_[A-Z_]+)"`).FindAllSubmatch(b, -1) {
		names[string(m[1])] = true
	}
	if len(names) < 20 {
		t.Fatalf("found %d settings in help.go", len(names))
	}
	return names
}

// routes are the paths wxlogin serves.
var routes = map[string]bool{"/healthz": true, "/readyz": true, "/metrics": true, "/graphql": true}

func TestManifests(t *testing.T) {
	dep := decode[appsv1.Deployment](t, "deployment.yaml")
	svc := decode[corev1.Service](t, "service.yaml")
	secret := decode[corev1.Secret](t, "secret.example.yaml")
	pdb := decode[policyv1.PodDisruptionBudget](t, "pdb.yaml")
	hpa := decode[autoscalingv2.HorizontalPodAutoscaler](t, "hpa.yaml")

	pod := dep.Spec.Template
	if len(pod.Spec.Containers) != 1 {
		t.Fatalf("%d containers, want wxlogin's", len(pod.Spec.Containers))
	}
	c := pod.Spec.Containers[0]
	ports := map[string]int32{}
	for _, p := range c.Ports {
		ports[p.Name] = p.ContainerPort
	}

	// The probes ask real routes on a real port.
	for name, probe := range map[string]*corev1.Probe{"readiness": c.ReadinessProbe, "liveness": c.LivenessProbe, "startup": c.StartupProbe} {
		if probe == nil || probe.HTTPGet == nil {
			t.Errorf("no %s probe over HTTP", name)
			continue
		}
		if !routes[probe.HTTPGet.Path] || ports[probe.HTTPGet.Port.String()] == 0 {
			t.Errorf("the %s probe asks %s on %s: not a route on a declared port", name, probe.HTTPGet.Path, probe.HTTPGet.Port.String())
		}
	}
	if c.ReadinessProbe.HTTPGet.Path != "/readyz" || c.LivenessProbe.HTTPGet.Path != "/healthz" {
		t.Errorf("readiness %s and liveness %s, want /readyz (the database answers) and /healthz (the process is up)", c.ReadinessProbe.HTTPGet.Path, c.LivenessProbe.HTTPGet.Path)
	}

	// Every variable is one wxlogin reads; every secret it names is in the Secret.
	known := settings(t)
	env := map[string]string{}
	for _, e := range c.Env {
		if !known[e.Name] {
			t.Errorf("env %s is not a setting wxlogin reads", e.Name)
		}
		env[e.Name] = e.Value
		if ref := e.ValueFrom; ref != nil && ref.SecretKeyRef != nil {
			if ref.SecretKeyRef.Name != secret.Name {
				t.Errorf("env %s comes from the secret %q, not %q", e.Name, ref.SecretKeyRef.Name, secret.Name)
			}
			if _, ok := secret.StringData[ref.SecretKeyRef.Key]; !ok {
				t.Errorf("env %s comes from the key %q, which the Secret's template lacks", e.Name, ref.SecretKeyRef.Key)
			}
		}
	}
	for _, required := range []string{"WXLOGIN_DATABASE_URL", "WXLOGIN_SECRET_KEY", "WECHAT_APPID", "WECHAT_SECRET"} {
		if _, ok := env[required]; !ok {
			t.Errorf("%s is not set", required)
		}
	}
	// The listeners agree with the ports.
	if port := strings.TrimPrefix(env["WXLOGIN_ADDR"], ":"); port != "8080" || ports["http"] != 8080 {
		t.Errorf("WXLOGIN_ADDR %q and the http port %d disagree", env["WXLOGIN_ADDR"], ports["http"])
	}
	if port := strings.TrimPrefix(env["WXLOGIN_OPS_ADDR"], ":"); port != "9100" || ports["metrics"] != 9100 || pod.Annotations["prometheus.io/port"] != "9100" {
		t.Errorf("WXLOGIN_OPS_ADDR %q, the metrics port %d and the scrape annotation %q disagree", env["WXLOGIN_OPS_ADDR"], ports["metrics"], pod.Annotations["prometheus.io/port"])
	}

	// The grace periods: the preStop pause and the drain fit in the pod's grace.
	grace, err := time.ParseDuration(env["WXLOGIN_SHUTDOWN_GRACE"])
	if err != nil {
		t.Fatalf("WXLOGIN_SHUTDOWN_GRACE %q: %v", env["WXLOGIN_SHUTDOWN_GRACE"], err)
	}
	var pause time.Duration
	if c.Lifecycle == nil || c.Lifecycle.PreStop == nil || c.Lifecycle.PreStop.Sleep == nil {
		t.Error("no preStop sleep: the pod would stop before the Service stops sending to it")
	} else {
		pause = time.Duration(c.Lifecycle.PreStop.Sleep.Seconds) * time.Second
	}
	if podGrace := time.Duration(*pod.Spec.TerminationGracePeriodSeconds) * time.Second; podGrace <= pause+grace {
		t.Errorf("terminationGracePeriodSeconds %s is not above the preStop pause %s plus WXLOGIN_SHUTDOWN_GRACE %s", podGrace, pause, grace)
	}

	// Resources, and a container that is not root and writes nothing.
	if c.Resources.Requests.Memory().IsZero() || c.Resources.Requests.Cpu().IsZero() || c.Resources.Limits.Memory().IsZero() {
		t.Error("the container lacks memory and CPU requests or a memory limit")
	}
	if sc := pod.Spec.SecurityContext; sc == nil || sc.RunAsNonRoot == nil || !*sc.RunAsNonRoot || sc.RunAsUser == nil || *sc.RunAsUser != 65532 {
		t.Error("the pod may run as root, or as another user than the image's 65532")
	}
	if sc := c.SecurityContext; sc == nil || sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem {
		t.Error("the root filesystem is writable")
	}

	// The Service, the budget and the autoscaler all find the pods.
	labels := pod.Labels
	matches := func(sel map[string]string) bool {
		for k, v := range sel {
			if labels[k] != v {
				return false
			}
		}
		return len(sel) > 0
	}
	if !matches(dep.Spec.Selector.MatchLabels) || !matches(svc.Spec.Selector) || !matches(pdb.Spec.Selector.MatchLabels) {
		t.Error("a selector does not match the pods' labels")
	}
	for _, p := range svc.Spec.Ports {
		if ports[p.TargetPort.String()] == 0 {
			t.Errorf("the Service's port %s targets %s, which the container does not declare", p.Name, p.TargetPort.String())
		}
	}
	if hpa.Spec.ScaleTargetRef.Kind != "Deployment" || hpa.Spec.ScaleTargetRef.Name != dep.Name || hpa.Spec.MinReplicas == nil || *hpa.Spec.MinReplicas < 2 {
		t.Errorf("the autoscaler targets %s %s from %v replicas, want the Deployment from at least 2", hpa.Spec.ScaleTargetRef.Kind, hpa.Spec.ScaleTargetRef.Name, hpa.Spec.MinReplicas)
	}
	if pdb.Spec.MinAvailable == nil || pdb.Spec.MinAvailable.IntValue() < 1 || int(*hpa.Spec.MinReplicas) <= pdb.Spec.MinAvailable.IntValue() {
		t.Error("the disruption budget keeps no instance, or all of them (drains would block)")
	}
}

// TestKustomization lists every manifest but the Secret's template.
func TestKustomization(t *testing.T) {
	var k struct {
		APIVersion string   `json:"apiVersion"`
		Kind       string   `json:"kind"`
		Resources  []string `json:"resources"`
		Images     []struct {
			Name   string `json:"name"`
			NewTag string `json:"newTag"`
		} `json:"images"`
	}
	b, err := os.ReadFile(filepath.Join(dir, "kustomization.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.UnmarshalStrict(b, &k); err != nil {
		t.Fatal(err)
	}
	files, _ := filepath.Glob(filepath.Join(dir, "*.yaml"))
	listed := map[string]bool{}
	for _, r := range k.Resources {
		listed[r] = true
	}
	for _, f := range files {
		name := filepath.Base(f)
		switch {
		case name == "kustomization.yaml", name == "secret.example.yaml":
			if listed[name] {
				t.Errorf("%s is applied", name)
			}
		case !listed[name]:
			t.Errorf("%s is not in the kustomization", name)
		}
	}
}

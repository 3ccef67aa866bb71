// Package k8s checks the Kubernetes manifests (ops/k8s): they render with kustomize (its Go
// library, the same code as `kubectl apply -k`), every object decodes strictly into the
// Kubernetes API types (an unknown or misspelt field fails), and the policies say what the
// runbook says: only the gateway is reachable from outside, admin ports from monitoring.
package k8s

import (
	"os"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	"sigs.k8s.io/kustomize/api/krusty"
	"sigs.k8s.io/kustomize/kyaml/filesys"
	"sigs.k8s.io/yaml"
)

var services = []string{"auth", "patient", "billing", "analytics", "gateway"}

// render builds dir with kustomize and decodes every object strictly, by kind.
func render(t *testing.T, dir string) map[string]map[string]any {
	t.Helper()
	k := krusty.MakeKustomizer(krusty.MakeDefaultOptions())
	rm, err := k.Run(filesys.MakeFsOnDisk(), dir)
	if err != nil {
		t.Fatalf("kustomize %s: %v", dir, err)
	}
	out := map[string]map[string]any{}
	for _, r := range rm.Resources() {
		b, err := r.AsYAML()
		if err != nil {
			t.Fatal(err)
		}
		var obj any
		switch r.GetKind() {
		case "Deployment":
			obj = &appsv1.Deployment{}
		case "Service":
			obj = &corev1.Service{}
		case "ServiceAccount":
			obj = &corev1.ServiceAccount{}
		case "ConfigMap":
			obj = &corev1.ConfigMap{}
		case "PersistentVolumeClaim":
			obj = &corev1.PersistentVolumeClaim{}
		case "PodDisruptionBudget":
			obj = &policyv1.PodDisruptionBudget{}
		case "HorizontalPodAutoscaler":
			obj = &autoscalingv2.HorizontalPodAutoscaler{}
		case "NetworkPolicy":
			obj = &networkingv1.NetworkPolicy{}
		default:
			t.Fatalf("%s: a kind the test does not know: %s", r.GetName(), r.GetKind())
		}
		if err := yaml.UnmarshalStrict(b, obj); err != nil {
			t.Fatalf("%s %s does not decode strictly: %v", r.GetKind(), r.GetName(), err)
		}
		if r.GetNamespace() != "pms" {
			t.Errorf("%s %s in namespace %q, want pms", r.GetKind(), r.GetName(), r.GetNamespace())
		}
		if out[r.GetKind()] == nil {
			out[r.GetKind()] = map[string]any{}
		}
		out[r.GetKind()][r.GetName()] = obj
	}
	return out
}

// TestManifests: the base and the external overlay render; each service has its Deployment
// (probes on the admin port, resources, non-root, read-only root), Service, PDB and HPA; no
// Secret is in the manifests; the network policies deny by default, open the gateway's public
// port alone to everyone and the admin ports to the monitoring namespace only.
func TestManifests(t *testing.T) {
	for _, dir := range []string{"base", "overlays/external"} {
		t.Run(dir, func(t *testing.T) {
			objs := render(t, dir)
			if len(objs["Secret"]) != 0 {
				t.Error("a Secret is written in the manifests")
			}
			for _, s := range services {
				d, ok := objs["Deployment"][s].(*appsv1.Deployment)
				if !ok {
					t.Fatalf("no Deployment %s", s)
				}
				c := d.Spec.Template.Spec.Containers[0]
				if c.ReadinessProbe == nil || c.ReadinessProbe.HTTPGet == nil || c.ReadinessProbe.HTTPGet.Path != "/readyz" || c.ReadinessProbe.HTTPGet.Port.StrVal != "admin" ||
					c.LivenessProbe == nil || c.LivenessProbe.HTTPGet == nil || c.LivenessProbe.HTTPGet.Path != "/healthz" || c.LivenessProbe.HTTPGet.Port.StrVal != "admin" {
					t.Errorf("%s: probes %+v %+v", s, c.ReadinessProbe, c.LivenessProbe)
				}
				// Migrations run before the admin port opens, for up to db.Migrate's 30-minute
				// lock wait: the startup probe holds liveness off that long.
				if sp := c.StartupProbe; sp == nil || sp.HTTPGet == nil || sp.HTTPGet.Path != "/healthz" || sp.HTTPGet.Port.StrVal != "admin" ||
					sp.PeriodSeconds*sp.FailureThreshold < 30*60 {
					t.Errorf("%s: startup probe %+v", s, c.StartupProbe)
				}
				if c.Resources.Requests.Cpu().IsZero() || c.Resources.Limits.Memory().IsZero() {
					t.Errorf("%s: resources %+v", s, c.Resources)
				}
				sc := d.Spec.Template.Spec.SecurityContext
				if sc == nil || sc.RunAsNonRoot == nil || !*sc.RunAsNonRoot || c.SecurityContext == nil || c.SecurityContext.ReadOnlyRootFilesystem == nil ||
					!*c.SecurityContext.ReadOnlyRootFilesystem {
					t.Errorf("%s: security context", s)
				}
				if len(c.Args) != 1 || c.Args[0] != s {
					t.Errorf("%s: args %v", s, c.Args)
				}
				reads := envOf(t, s)
				for _, e := range c.Env {
					if strings.HasPrefix(e.Value, "postgres://") {
						t.Errorf("%s: a database URL written in the manifest", s)
					}
					// Every variable is one `pms <service>` reads (NAME_FILE: NAME from a file).
					if name := strings.TrimSuffix(e.Name, "_FILE"); !reads[name] {
						t.Errorf("%s: %s is not read by pms %s (cmd/pms/testdata/env.golden)", s, e.Name, s)
					}
				}
				for _, kind := range []string{"Service", "PodDisruptionBudget", "HorizontalPodAutoscaler"} {
					if objs[kind][s] == nil {
						t.Errorf("no %s %s", kind, s)
					}
				}
				svc := objs["Service"][s].(*corev1.Service)
				if (svc.Spec.Type == corev1.ServiceTypeLoadBalancer) != (s == "gateway") {
					t.Errorf("%s: Service type %s (only the gateway's is exposed)", s, svc.Spec.Type)
				}
			}
			np := objs["NetworkPolicy"]
			deny := np["default-deny-ingress"].(*networkingv1.NetworkPolicy)
			if len(deny.Spec.PodSelector.MatchLabels) != 0 || len(deny.Spec.Ingress) != 0 {
				t.Error("the default policy does not deny every ingress")
			}
			for name, p := range np {
				for _, rule := range p.(*networkingv1.NetworkPolicy).Spec.Ingress {
					if len(rule.From) == 0 && name != "gateway-public" {
						t.Errorf("policy %s lets anyone in", name)
					}
				}
			}
			pub := np["gateway-public"].(*networkingv1.NetworkPolicy)
			if pub.Spec.PodSelector.MatchLabels["app.kubernetes.io/name"] != "gateway" || len(pub.Spec.Ingress) != 1 ||
				len(pub.Spec.Ingress[0].Ports) != 1 || pub.Spec.Ingress[0].Ports[0].Port.StrVal != "http" {
				t.Error("the public policy is not the gateway's HTTP port alone")
			}
			adm := np["admin-from-monitoring"].(*networkingv1.NetworkPolicy)
			if adm.Spec.Ingress[0].From[0].NamespaceSelector.MatchLabels["kubernetes.io/metadata.name"] != "monitoring" ||
				adm.Spec.Ingress[0].Ports[0].Port.StrVal != "admin" {
				t.Error("the admin policy is not the monitoring namespace's")
			}
		})
	}
}

// envOf is the set of environment variables `pms <command>` reads, from the golden file that
// TestEnvGolden keeps equal to the flags (cmd/pms/testdata/env.golden).
func envOf(t *testing.T, command string) map[string]bool {
	t.Helper()
	b, err := os.ReadFile("../../cmd/pms/testdata/env.golden")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, command+": "); ok {
			out := map[string]bool{}
			for _, n := range strings.Fields(rest) {
				out[n] = true
			}
			return out
		}
	}
	t.Fatalf("pms %s is not in env.golden", command)
	return nil
}

package deploy

import (
	"bytes"
	"errors"
	"io"
	"os/exec"
	"slices"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
)

const chartDir = "helm/tutela"

// manifest is one rendered Kubernetes object, as generic YAML.
type manifest map[string]any

func (m manifest) kind() string { s, _ := m["kind"].(string); return s }

// at walks a path of map keys and list indexes (ints) and returns what is there, or nil.
func at(v any, path ...any) any {
	for _, p := range path {
		switch k := p.(type) {
		case string:
			m, ok := v.(map[string]any)
			if mm, ok2 := v.(manifest); ok2 {
				m, ok = mm, true
			}
			if !ok {
				return nil
			}
			v = m[k]
		case int:
			l, ok := v.([]any)
			if !ok || k >= len(l) {
				return nil
			}
			v = l[k]
		}
	}
	return v
}

// testIssuer is the issuer every render gets first (the chart has no default); a later --set
// issuer=... overrides it.
const testIssuer = "https://id.example.org"

func helmTemplate(t *testing.T, args ...string) ([]manifest, error) {
	t.Helper()
	return helmTemplateBare(t, append([]string{"--set", "issuer=" + testIssuer}, args...)...)
}

// helmTemplateBare renders with exactly the given arguments.
func helmTemplateBare(t *testing.T, args ...string) ([]manifest, error) {
	t.Helper()
	helm := tool(t, "helm")
	cmd := exec.Command(helm, append([]string{"template", "t", chartDir}, args...)...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		return nil, errors.New(errb.String())
	}
	var docs []manifest
	dec := yaml.NewDecoder(&out)
	for {
		var m map[string]any // not manifest: the decoder would give nested maps that type too
		err := dec.Decode(&m)
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("rendered YAML does not parse: %v", err)
		}
		if m != nil {
			docs = append(docs, m)
		}
	}
	return docs, nil
}

func mustTemplate(t *testing.T, args ...string) []manifest {
	t.Helper()
	docs, err := helmTemplate(t, args...)
	if err != nil {
		t.Fatalf("helm template: %v", err)
	}
	return docs
}

func byKind(t *testing.T, docs []manifest, kind string) manifest {
	t.Helper()
	for _, d := range docs {
		if d.kind() == kind {
			return d
		}
	}
	return nil
}

func container(d manifest, name string) map[string]any {
	for _, c := range asList(at(d, "spec", "template", "spec", "containers")) {
		if m, _ := c.(map[string]any); m["name"] == name {
			return m
		}
	}
	return nil
}

func asList(v any) []any { l, _ := v.([]any); return l }

func envOf(c map[string]any) map[string]map[string]any {
	env := map[string]map[string]any{}
	for _, e := range asList(c["env"]) {
		m := e.(map[string]any)
		env[m["name"].(string)] = m
	}
	return env
}

// inlineSecrets lists every place a rendered chart carries a secret value instead of a
// reference: a Secret object, or a container environment entry with a secret's value.
func inlineSecrets(docs []manifest) []string {
	var found []string
	for _, d := range docs {
		if d.kind() == "Secret" {
			found = append(found, "a Secret object is rendered")
		}
		for _, key := range []string{"containers", "initContainers"} {
			for _, c := range asList(at(d, "spec", "template", "spec", key)) {
				for _, e := range asList(at(c, "env")) {
					name, _ := at(e, "name").(string)
					value, _ := at(e, "value").(string)
					if secretValue(name, value) {
						found = append(found, name+" has an inline value")
					}
				}
			}
		}
	}
	return found
}

func TestHelmChart_Lints(t *testing.T) {
	t.Parallel()
	out, err := exec.Command(tool(t, "helm"), "lint", "--strict", "--set", "issuer="+testIssuer, chartDir).CombinedOutput()
	if err != nil {
		t.Fatalf("helm lint --strict: %v\n%s", err, out)
	}
}

// The defaults are what an operator gets without reading values.yaml, so they carry the
// guarantees: several replicas under a PodDisruptionBudget, probes on the right paths, no secret
// in the manifests, a non-root read-only container without capabilities, no API token.
func TestHelmChart_DefaultsAreHighlyAvailableAndLockedDown(t *testing.T) {
	t.Parallel()
	docs := mustTemplate(t)
	dep := byKind(t, docs, "Deployment")
	if dep == nil {
		t.Fatal("no Deployment rendered")
	}
	if r, _ := at(dep, "spec", "replicas").(int); r < 2 {
		t.Errorf("replicas = %v, want >= 2", at(dep, "spec", "replicas"))
	}
	pdb := byKind(t, docs, "PodDisruptionBudget")
	if pdb == nil {
		t.Fatal("no PodDisruptionBudget rendered")
	}
	sel := at(dep, "spec", "selector", "matchLabels")
	if !equalYAML(at(pdb, "spec", "selector", "matchLabels"), sel) {
		t.Errorf("the PDB selects %v, the Deployment's pods are %v", at(pdb, "spec", "selector", "matchLabels"), sel)
	}
	c := container(dep, "tutela")
	if c == nil {
		t.Fatal("no tutela container")
	}
	for probe, path := range map[string]string{"livenessProbe": "/healthz", "readinessProbe": "/readyz", "startupProbe": "/healthz"} {
		if got := at(c, probe, "httpGet", "path"); got != path {
			t.Errorf("%s path = %v, want %s", probe, got, path)
		}
		if got := at(c, probe, "httpGet", "port"); got != "api" {
			t.Errorf("%s port = %v, want the api port", probe, got)
		}
	}
	if found := inlineSecrets(docs); len(found) > 0 {
		t.Errorf("secret values in the manifests: %q", found)
	}
	env := envOf(c)
	if ref := at(env["TUTELA_DATABASE_URL"], "valueFrom", "secretKeyRef", "key"); ref != "database-url" {
		t.Errorf("TUTELA_DATABASE_URL = %v, want it from the Secret", env["TUTELA_DATABASE_URL"])
	}
	for _, name := range []string{"TUTELA_MASTER_KEY_FILE", "TUTELA_DATABASE_PASSWORD_FILE", "TUTELA_METRICS_TOKEN_FILE"} {
		if v, _ := at(env[name], "value").(string); !strings.HasPrefix(v, "/etc/tutela/secrets/") {
			t.Errorf("%s = %q, want a file in the mounted Secret", name, v)
		}
	}
	pod := at(dep, "spec", "template", "spec")
	if at(pod, "securityContext", "runAsNonRoot") != true || at(c, "securityContext", "runAsNonRoot") != true {
		t.Error("runAsNonRoot is not true on the pod and the container")
	}
	for _, key := range []string{"containers", "initContainers"} {
		for _, cc := range asList(at(pod, key)) {
			sc := at(cc, "securityContext")
			if at(sc, "readOnlyRootFilesystem") != true || at(sc, "allowPrivilegeEscalation") != false ||
				!equalYAML(at(sc, "capabilities", "drop"), []any{"ALL"}) || at(sc, "seccompProfile", "type") != "RuntimeDefault" {
				t.Errorf("%s %v: securityContext %v is not locked down", key, at(cc, "name"), sc)
			}
			if at(cc, "resources", "requests") == nil || at(cc, "resources", "limits", "memory") == nil {
				t.Errorf("%s %v: no resource requests and memory limit", key, at(cc, "name"))
			}
		}
	}
	if at(pod, "automountServiceAccountToken") != false {
		t.Error("the pod mounts a service account token")
	}
	if sa := byKind(t, docs, "ServiceAccount"); sa == nil || sa["automountServiceAccountToken"] != false {
		t.Error("the ServiceAccount does not turn token automount off")
	}
	if env["TUTELA_HTTP_ALLOW_PLAINTEXT"] == nil || at(c, "livenessProbe", "httpGet", "scheme") != "HTTP" {
		t.Error("without tls.secretName the pod should serve plaintext behind the ingress, probed over HTTP")
	}
	ports := []string{}
	for _, p := range asList(c["ports"]) {
		ports = append(ports, at(p, "name").(string))
	}
	if !slices.Equal(ports, []string{"api", "metrics"}) {
		t.Errorf("container ports %v, want api and metrics", ports)
	}
	if byKind(t, docs, "Ingress") != nil {
		t.Error("an Ingress is rendered though ingress.enabled is false")
	}
	checkNetworkPolicy(t, byKind(t, docs, "NetworkPolicy"), []string{"api", "metrics"})
}

// checkNetworkPolicy: ingress only to the named ports; egress only to PostgreSQL and DNS.
func checkNetworkPolicy(t *testing.T, np manifest, ingressPorts []string) {
	t.Helper()
	if np == nil {
		t.Fatal("no NetworkPolicy rendered")
	}
	if !equalYAML(at(np, "spec", "policyTypes"), []any{"Ingress", "Egress"}) {
		t.Errorf("policyTypes %v, want Ingress and Egress", at(np, "spec", "policyTypes"))
	}
	var in []string
	for _, r := range asList(at(np, "spec", "ingress")) {
		ps := asList(at(r, "ports"))
		if len(ps) == 0 {
			t.Errorf("an ingress rule without ports admits every port: %v", r)
		}
		for _, p := range ps {
			in = append(in, at(p, "port").(string))
		}
	}
	if !slices.Equal(in, ingressPorts) {
		t.Errorf("ingress ports %v, want %v", in, ingressPorts)
	}
	var out []int
	for _, r := range asList(at(np, "spec", "egress")) {
		ps := asList(at(r, "ports"))
		if len(ps) == 0 {
			t.Errorf("an egress rule without ports allows everything: %v", r)
		}
		for _, p := range ps {
			out = append(out, at(p, "port").(int))
		}
	}
	if !slices.Equal(out, []int{5432, 53, 53}) {
		t.Errorf("egress ports %v, want PostgreSQL and DNS only", out)
	}
}

func equalYAML(a, b any) bool {
	x, _ := yaml.Marshal(a)
	y, _ := yaml.Marshal(b)
	return bytes.Equal(x, y)
}

// With TLS in the pod the probes use HTTPS and plaintext is not allowed; with metrics off there is
// no metrics port anywhere; the Ingress appears when asked; extra egress is appended as given.
func TestHelmChart_TLSMetricsOffIngressAndEgress(t *testing.T) {
	t.Parallel()
	docs := mustTemplate(t, "--set", "tls.secretName=tutela-tls", "--set", "metrics.enabled=false",
		"--set", "ingress.enabled=true", "--set", "replicaCount=5",
		"--set", "networkPolicy.extraEgress[0].ports[0].port=587")
	dep := byKind(t, docs, "Deployment")
	c := container(dep, "tutela")
	env := envOf(c)
	if env["TUTELA_HTTP_ALLOW_PLAINTEXT"] != nil || at(env["TUTELA_TLS_CERT_FILE"], "value") != "/etc/tutela/tls/tls.crt" {
		t.Errorf("TLS env: %v", env)
	}
	if at(env["TUTELA_METRICS_ADDR"], "value") != "off" || env["TUTELA_METRICS_TOKEN_FILE"] != nil {
		t.Errorf("metrics off: TUTELA_METRICS_ADDR = %v", env["TUTELA_METRICS_ADDR"])
	}
	for _, probe := range []string{"livenessProbe", "readinessProbe"} {
		if at(c, probe, "httpGet", "scheme") != "HTTPS" {
			t.Errorf("%s scheme = %v, want HTTPS", probe, at(c, probe, "httpGet", "scheme"))
		}
	}
	if at(dep, "spec", "replicas") != 5 {
		t.Errorf("replicas = %v, want 5", at(dep, "spec", "replicas"))
	}
	if byKind(t, docs, "Ingress") == nil {
		t.Error("no Ingress with ingress.enabled")
	}
	np := byKind(t, docs, "NetworkPolicy")
	egress := asList(at(np, "spec", "egress"))
	if len(egress) != 3 || at(egress[2], "ports", 0, "port") != 587 {
		t.Errorf("egress %v, want the extra rule appended", egress)
	}
	for _, r := range asList(at(np, "spec", "ingress")) {
		if at(r, "ports", 0, "port") == "metrics" {
			t.Error("metrics port open in the NetworkPolicy with metrics off")
		}
	}
	if found := inlineSecrets(docs); len(found) > 0 {
		t.Errorf("secret values in the manifests: %q", found)
	}
}

// Values that would leave the nodes disagreeing or put a secret in the manifests are refused or
// caught: no issuer, a plain-http issuer; a secret passed through env is flagged by the check.
func TestHelmChart_RefusesBadValuesAndCatchesInlineSecrets(t *testing.T) {
	t.Parallel()
	for _, bad := range [][]string{{"--set", "issuer="}, {"--set", "issuer=http://id.example.org"}, {"--set", "secrets.name="}} {
		if _, err := helmTemplate(t, bad...); err == nil {
			t.Errorf("helm template %v succeeded, want refused", bad)
		}
	}
	// The check behind the chart's refusal still works on its own.
	if found := inlineSecrets([]manifest{{"kind": "Deployment", "spec": map[string]any{"template": map[string]any{"spec": map[string]any{
		"containers": []any{map[string]any{"env": []any{map[string]any{"name": "TUTELA_DATABASE_PASSWORD", "value": "hunter2"}}}}}}}}}); len(found) != 1 || !strings.Contains(found[0], "TUTELA_DATABASE_PASSWORD") {
		t.Fatalf("inlineSecrets = %q, want the password passed through env caught", found)
	}
}

// issuer has no default (values.yaml): an install that does not name it is refused, with the
// reason, instead of running every node under a placeholder URL.
func TestHelmChart_IssuerRequiredWithoutDefault(t *testing.T) {
	t.Parallel()
	_, err := helmTemplateBare(t)
	if err == nil || !strings.Contains(err.Error(), "issuer is required") {
		t.Fatalf("helm template without issuer: %v, want refused with \"issuer is required\"", err)
	}
	docs, err := helmTemplateBare(t, "--set", "issuer=https://id.example.org")
	if err != nil {
		t.Fatal(err)
	}
	if got := at(envOf(container(byKind(t, docs, "Deployment"), "tutela"))["TUTELA_AUTH_ISSUER"], "value"); got != "https://id.example.org" {
		t.Errorf("TUTELA_AUTH_ISSUER = %v, want the issuer given", got)
	}
}

{{- define "tutela.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "tutela.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else if contains (include "tutela.name" .) .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name (include "tutela.name" .) | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "tutela.selectorLabels" -}}
app.kubernetes.io/name: {{ include "tutela.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "tutela.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{ include "tutela.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end -}}

{{- define "tutela.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "tutela.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "tutela.image" -}}
{{- if .Values.image.digest -}}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest -}}
{{- else -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}
{{- end -}}

{{- define "tutela.scheme" -}}
{{- if .Values.tls.secretName }}HTTPS{{ else }}HTTP{{ end -}}
{{- end -}}

{{/*
The secrets Tutela reads (config/config.go secretVars, and vault.hsm_pin's name by the settings'
rule); TUTELA_AUDIT_SHIP_SECRET_<NAME> is matched by prefix. deploy/helm_test.go checks this list
against config.SecretVariables, so a new secret cannot be forgotten here.
*/}}
{{- define "tutela.secretVars" -}}
TUTELA_DATABASE_PASSWORD TUTELA_MASTER_KEY TUTELA_SMTP_PASSWORD TUTELA_HSM_PIN TUTELA_VAULT_HSM_PIN TUTELA_VAULT_TOKEN TUTELA_METRICS_TOKEN TUTELA_FILES_S3_SECRET_ACCESS_KEY TUTELA_TRACING_HEADERS TUTELA_MONITORING_SINKS_WEBHOOK_SECRET
{{- end -}}

{{/*
tutela.isSecretVar: "true" when the variable name (without _FILE) carries a secret as its value:
one of tutela.secretVars, an audit ship secret, or any name ending in a secret's word (so a secret
added later is refused before this list learns it). Settings such as
TUTELA_AUTH_PASSWORD_MIN_LENGTH or TUTELA_AUTH_ACCESS_TOKEN_TTL do not end so and pass.
*/}}
{{- define "tutela.isSecretVar" -}}
{{- $n := . -}}
{{- if or (has $n (splitList " " (include "tutela.secretVars" nil))) (hasPrefix "TUTELA_AUDIT_SHIP_SECRET_" $n) (regexMatch "(SECRET|PASSWORD|PASSPHRASE|TOKEN|PIN|HEADERS|MASTER_KEY|PRIVATE_KEY|ACCESS_KEY)$" $n) (contains "_SECRET_" $n) -}}
true
{{- end -}}
{{- end -}}

{{/*
tutela.checkSecrets fails the render when a secret would become a chart value (env) or when
secretFiles is malformed. Nothing secret is ever a value of this chart (docs/deploy.md).
*/}}
{{- define "tutela.checkSecrets" -}}
{{- $s := .Values.secrets -}}
{{- range $k, $v := .Values.env -}}
{{- if and (not (hasSuffix "_FILE" $k)) (include "tutela.isSecretVar" $k) -}}
{{- fail (printf "env.%s is a secret and nothing secret is a chart value: put it in the Secret %q and list it under secretFiles (e.g. {key: my-key, env: %s})" $k $s.name $k) -}}
{{- end -}}
{{- if regexMatch "://[^/@\\s]+:[^/@\\s]+@" (toString $v) -}}
{{- fail (printf "env.%s holds a URL with a password: keep credentials in the Secret %q" $k $s.name) -}}
{{- end -}}
{{- end -}}
{{- $seen := dict -}}
{{- $chartSet := dict "TUTELA_DATABASE_PASSWORD" "secrets.databasePasswordKey" "TUTELA_MASTER_KEY" "secrets.masterKeyKey" "TUTELA_METRICS_TOKEN" "secrets.metricsTokenKey" -}}
{{- range $i, $f := .Values.secretFiles -}}
{{- if not (and $f.key $f.env) -}}
{{- fail (printf "secretFiles[%d] needs both key (in the Secret %q) and env (e.g. TUTELA_SMTP_PASSWORD)" $i $s.name) -}}
{{- end -}}
{{- if not (regexMatch "^[-._a-zA-Z0-9]+$" $f.key) -}}
{{- fail (printf "secretFiles[%d].key %q is not a Secret key (letters, digits, '-', '_', '.')" $i $f.key) -}}
{{- end -}}
{{- if hasSuffix "_FILE" $f.env -}}
{{- fail (printf "secretFiles[%d].env %q: name the secret itself; the chart sets %s" $i $f.env $f.env) -}}
{{- end -}}
{{- if not (include "tutela.isSecretVar" $f.env) -}}
{{- fail (printf "secretFiles[%d].env %q is not a secret Tutela reads; non-secret settings go in env" $i $f.env) -}}
{{- end -}}
{{- if hasKey $chartSet $f.env -}}
{{- fail (printf "secretFiles[%d].env %s is set by the chart: use %s" $i $f.env (get $chartSet $f.env)) -}}
{{- end -}}
{{- if hasKey $seen $f.env -}}
{{- fail (printf "secretFiles: %s is listed twice" $f.env) -}}
{{- end -}}
{{- if hasKey $.Values.env (printf "%s_FILE" $f.env) -}}
{{- fail (printf "secretFiles[%d]: %s_FILE is also set in env" $i $f.env) -}}
{{- end -}}
{{- $_ := set $seen $f.env true -}}
{{- end -}}
{{- end -}}

{{/* tutela.secretKeys: the Secret's keys mounted at /etc/tutela/secrets, each once, one a line. */}}
{{- define "tutela.secretKeys" -}}
{{- $s := .Values.secrets -}}
{{- $keys := list $s.masterKeyKey $s.auditKeyKey -}}
{{- if $s.databasePasswordKey }}{{ $keys = append $keys $s.databasePasswordKey }}{{ end -}}
{{- if and .Values.metrics.enabled $s.metricsTokenKey }}{{ $keys = append $keys $s.metricsTokenKey }}{{ end -}}
{{- range $s.extraKeys }}{{ $keys = append $keys . }}{{ end -}}
{{- range .Values.secretFiles }}{{ $keys = append $keys .key }}{{ end -}}
{{- join "\n" (uniq $keys) -}}
{{- end -}}

{{/*
The services of the suite, in start order. Each has a block of the same shape in
values.yaml; adding a service is a block there and a name here.
*/}}
{{- define "unpuzzle.serviceNames" -}}
auth courses media ai payments analytics
{{- end -}}

{{/* The enabled services, as a list of names. */}}
{{- define "unpuzzle.enabledServices" -}}
{{- $enabled := list -}}
{{- range $name := splitList " " (include "unpuzzle.serviceNames" .) -}}
{{- if (index $.Values $name).enabled -}}{{- $enabled = append $enabled $name -}}{{- end -}}
{{- end -}}
{{- toJson $enabled -}}
{{- end -}}

{{- define "unpuzzle.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Prefix of every resource name: the release name, or release-unpuzzle. */}}
{{- define "unpuzzle.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 40 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 40 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 40 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/* Name of a service's resources: <fullname>-<service>. Context: dict root name. */}}
{{- define "unpuzzle.componentName" -}}
{{- printf "%s-%s" (include "unpuzzle.fullname" .root) .name -}}
{{- end -}}

{{/* Env prefix of a service: AUTH_, COURSES_, ... */}}
{{- define "unpuzzle.envPrefix" -}}
{{- printf "%s_" (upper .) -}}
{{- end -}}

{{- define "unpuzzle.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Selector labels. Context: dict root name component. */}}
{{- define "unpuzzle.selectorLabels" -}}
app.kubernetes.io/name: {{ .name }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{/* All labels. Context: dict root name component [svc]. */}}
{{- define "unpuzzle.labels" -}}
{{ include "unpuzzle.selectorLabels" . }}
app.kubernetes.io/part-of: unpuzzle
app.kubernetes.io/version: {{ include "unpuzzle.imageTag" . | quote }}
app.kubernetes.io/managed-by: {{ .root.Release.Service }}
helm.sh/chart: {{ include "unpuzzle.chart" .root }}
{{- end -}}

{{/* Image tag of a component: its own, else global, else appVersion. Context: dict root svc. */}}
{{- define "unpuzzle.imageTag" -}}
{{- $own := "" -}}
{{- if .svc -}}{{- $own = .svc.image.tag -}}{{- end -}}
{{- coalesce $own .root.Values.global.image.tag .root.Chart.AppVersion | toString -}}
{{- end -}}

{{/* Full image reference. Context: dict root svc. */}}
{{- define "unpuzzle.image" -}}
{{- $registry := .root.Values.global.image.registry -}}
{{- $repo := .svc.image.repository -}}
{{- if $registry -}}{{- $repo = printf "%s/%s" (trimSuffix "/" $registry) $repo -}}{{- end -}}
{{- printf "%s:%s" $repo (include "unpuzzle.imageTag" .) -}}
{{- end -}}

{{/* A value as an env string: integral numbers without an exponent, the rest as text. */}}
{{- define "unpuzzle.envString" -}}
{{- if or (kindIs "float64" .) (kindIs "float32" .) -}}
{{- if eq (float64 .) (floor .) -}}{{- int64 . -}}{{- else -}}{{- . -}}{{- end -}}
{{- else -}}
{{- . -}}
{{- end -}}
{{- end -}}

{{/* In-cluster URL of auth's JWKS. */}}
{{- define "unpuzzle.jwksUrl" -}}
{{- printf "http://%s:%v/api/v1/auth/.well-known/jwks.json" (include "unpuzzle.componentName" (dict "root" . "name" "auth")) .Values.auth.port -}}
{{- end -}}

{{/*
The non-secret environment of a service, as a YAML map of full names to strings: the
shared settings (ServiceSettings), the listen address, then the service's own `env`
(which may override any of them). Context: dict root name svc.
*/}}
{{- define "unpuzzle.serviceConfig" -}}
{{- $g := .root.Values.global -}}
{{- $p := include "unpuzzle.envPrefix" .name -}}
{{- $env := dict "ENV" $g.env -}}
{{- $_ := set $env (printf "%sHOST" $p) "0.0.0.0" -}}
{{- $_ = set $env (printf "%sPORT" $p) (include "unpuzzle.envString" .svc.port) -}}
{{- $_ = set $env (printf "%sEVENTS_PREFIX" $p) $g.eventsPrefix -}}
{{- $_ = set $env (printf "%sLOG_LEVEL" $p) $g.logLevel -}}
{{- $_ = set $env (printf "%sJWT_ISSUER" $p) $g.jwt.issuer -}}
{{- $_ = set $env (printf "%sJWT_AUDIENCE" $p) $g.jwt.audience -}}
{{- if ne .name "auth" -}}
{{- $_ = set $env (printf "%sJWKS_URL" $p) (include "unpuzzle.jwksUrl" .root) -}}
{{- end -}}
{{- if not $g.nats.existingSecret.name -}}
{{- $_ = set $env (printf "%sNATS_URL" $p) $g.nats.url -}}
{{- end -}}
{{- if not $g.redis.existingSecret.name -}}
{{- $_ = set $env (printf "%sREDIS_URL" $p) $g.redis.url -}}
{{- end -}}
{{- if $g.otlpEndpoint -}}
{{- $_ = set $env (printf "%sOTLP_ENDPOINT" $p) $g.otlpEndpoint -}}
{{- end -}}
{{- range $key, $value := .svc.env -}}
{{- $_ = set $env (printf "%s%s" $p $key) (include "unpuzzle.envString" $value) -}}
{{- end -}}
{{- toYaml $env -}}
{{- end -}}

{{/* Secret-backed env entries of a service (secretKeyRef). Context: dict root name svc. */}}
{{- define "unpuzzle.secretEnv" -}}
{{- $g := .root.Values.global -}}
{{- $p := include "unpuzzle.envPrefix" .name -}}
{{- $secret := .svc.secret -}}
{{- range $var, $key := $secret.keys }}
- name: {{ printf "%s%s" $p $var }}
  valueFrom:
    secretKeyRef:
      name: {{ $secret.name }}
      key: {{ $key }}
{{- end }}
{{- range $var, $key := $secret.optionalKeys }}
- name: {{ printf "%s%s" $p $var }}
  valueFrom:
    secretKeyRef:
      name: {{ $secret.name }}
      key: {{ $key }}
      optional: true
{{- end }}
{{- if $g.nats.existingSecret.name }}
- name: {{ $p }}NATS_URL
  valueFrom:
    secretKeyRef:
      name: {{ $g.nats.existingSecret.name }}
      key: {{ $g.nats.existingSecret.key }}
{{- end }}
{{- if $g.redis.existingSecret.name }}
- name: {{ $p }}REDIS_URL
  valueFrom:
    secretKeyRef:
      name: {{ $g.redis.existingSecret.name }}
      key: {{ $g.redis.existingSecret.key }}
{{- end }}
{{- with .svc.extraEnv }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{/* envFrom of a service's containers. Context: dict root name svc. */}}
{{- define "unpuzzle.envFrom" -}}
- configMapRef:
    name: {{ include "unpuzzle.componentName" . }}-env
{{- with .svc.extraEnvFrom }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{/* Pod-level settings shared by every pod of a service. Context: dict root name svc. */}}
{{- define "unpuzzle.podCommon" -}}
{{- with .root.Values.global.imagePullSecrets }}
imagePullSecrets:
  {{- toYaml . | nindent 2 }}
{{- end }}
securityContext:
  {{- toYaml .root.Values.global.podSecurityContext | nindent 2 }}
{{- with .svc.nodeSelector }}
nodeSelector:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .svc.tolerations }}
tolerations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .svc.affinity }}
affinity:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end -}}

{{/* The /tmp scratch volume. Context: a size limit string or "". */}}
{{- define "unpuzzle.tmpVolume" -}}
- name: tmp
  emptyDir:
    {{- if . }}
    sizeLimit: {{ . }}
    {{- else }}
    sizeLimit: 256Mi
    {{- end }}
{{- end -}}

{{/* Checksum of a service's ConfigMap content: pods restart when it changes. */}}
{{- define "unpuzzle.configChecksum" -}}
{{- include "unpuzzle.serviceConfig" . | sha256sum -}}
{{- end -}}

{{/*
The gateway's environment (GATEWAY_*, see gateway/README.md): upstreams are the enabled
services' in-cluster addresses; the JWKS URL feeds the keys file the entrypoint refreshes.
Listen address, workdir and log targets are set by the image (deploy/gateway/Dockerfile).
*/}}
{{- define "unpuzzle.gatewayConfig" -}}
{{- $g := .Values.global -}}
{{- $upstreams := list -}}
{{- range $name := include "unpuzzle.enabledServices" . | fromJsonArray -}}
{{- $address := printf "%s:%v" (include "unpuzzle.componentName" (dict "root" $ "name" $name)) (index $.Values $name).port -}}
{{- $upstreams = append $upstreams (printf "%s=%s" $name $address) -}}
{{- end -}}
{{- $env := dict "GATEWAY_UPSTREAMS" (join "," $upstreams) -}}
{{- $_ := set $env "GATEWAY_JWT_ISSUER" $g.jwt.issuer -}}
{{- $_ = set $env "GATEWAY_JWT_AUDIENCE" $g.jwt.audience -}}
{{- if .Values.auth.enabled -}}
{{- $_ = set $env "GATEWAY_JWKS_URL" (include "unpuzzle.jwksUrl" .) -}}
{{- end -}}
{{- range $key, $value := .Values.gateway.env -}}
{{- $_ = set $env (printf "GATEWAY_%s" $key) (include "unpuzzle.envString" $value) -}}
{{- end -}}
{{- toYaml $env -}}
{{- end -}}

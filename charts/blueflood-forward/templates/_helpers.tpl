{{/*
Names, labels and the pieces shared by the templates.
*/}}

{{- define "blueflood-forward.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "blueflood-forward.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{- define "blueflood-forward.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "blueflood-forward.selectorLabels" -}}
app.kubernetes.io/name: {{ include "blueflood-forward.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "blueflood-forward.labels" -}}
helm.sh/chart: {{ include "blueflood-forward.chart" . }}
{{ include "blueflood-forward.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/component: {{ .Values.mode }}
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{- define "blueflood-forward.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "blueflood-forward.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{/* registry/repository:tag or @digest */}}
{{- define "blueflood-forward.imageRef" -}}
{{- $img := .image -}}
{{- $ref := printf "%s/%s" $img.registry $img.repository | trimPrefix "/" -}}
{{- if $img.digest -}}
{{- printf "%s@%s" $ref $img.digest -}}
{{- else -}}
{{- printf "%s:%s" $ref (toString (default .default $img.tag)) -}}
{{- end -}}
{{- end -}}

{{- define "blueflood-forward.image" -}}
{{- include "blueflood-forward.imageRef" (dict "image" .Values.image "default" .Chart.AppVersion) -}}
{{- end -}}

{{/*
True (non-empty) while image is the placeholder of values.yaml, which a chart from a checkout
keeps (the release workflow writes its own repository into the packaged chart).
*/}}
{{- define "blueflood-forward.placeholderImage" -}}
{{- if and (eq .Values.image.registry "ghcr.io") (eq .Values.image.repository "blueflood-forward/blueflood-forward") (not .Values.image.digest) -}}true{{- end -}}
{{- end -}}

{{- define "blueflood-forward.relayImage" -}}
{{- include "blueflood-forward.imageRef" (dict "image" .Values.relay.image "default" "latest") -}}
{{- end -}}

{{- define "blueflood-forward.secretName" -}}
{{- if .Values.auth.existingSecret -}}
{{- .Values.auth.existingSecret -}}
{{- else -}}
{{- printf "%s-keystone" (include "blueflood-forward.fullname" .) | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{/* True (non-empty) when the forwarder reads the credentials Secret through a mounted directory. */}}
{{- define "blueflood-forward.mountSecret" -}}
{{- if and .Values.auth.enabled (eq .Values.auth.source "files") -}}true{{- end -}}
{{- end -}}

{{/* True (non-empty) when /status and /metrics need the admin token (admin.token.existingSecret). */}}
{{- define "blueflood-forward.adminToken" -}}
{{- if .Values.admin.token.existingSecret -}}true{{- end -}}
{{- end -}}

{{/* Directory the admin token Secret is mounted at. */}}
{{- define "blueflood-forward.adminTokenDir" -}}
/etc/blueflood-forward/admin-token
{{- end -}}

{{/*
API versions that depend on the cluster's Kubernetes version (chart kubeVersion >= 1.20).
policy/v1 PodDisruptionBudget: Kubernetes 1.21 and later (policy/v1beta1 is gone in 1.25).
Both the served API and the version are asked. The API: the kind as a cluster's discovery (or
--api-versions) lists it, or the group version as `helm template` without a cluster lists it
(its default set has group versions only, policy/v1 among them, whatever --kube-version says:
hence the version too).
*/}}
{{- define "blueflood-forward.pdbApiVersion" -}}
{{- $served := or (.Capabilities.APIVersions.Has "policy/v1/PodDisruptionBudget") (.Capabilities.APIVersions.Has "policy/v1") -}}
{{- if and $served (semverCompare ">=1.21.0-0" .Capabilities.KubeVersion.Version) -}}
policy/v1
{{- else -}}
policy/v1beta1
{{- end -}}
{{- end -}}

{{/*
HorizontalPodAutoscaler: autoscaling/v2 from Kubernetes 1.23 (autoscaling/v2beta2 is gone in
1.26), asked like the PodDisruptionBudget's: the API served and the version.
*/}}
{{- define "blueflood-forward.hpaApiVersion" -}}
{{- $served := or (.Capabilities.APIVersions.Has "autoscaling/v2/HorizontalPodAutoscaler") (.Capabilities.APIVersions.Has "autoscaling/v2") -}}
{{- if and $served (semverCompare ">=1.23.0-0" .Capabilities.KubeVersion.Version) -}}
autoscaling/v2
{{- else -}}
autoscaling/v2beta2
{{- end -}}
{{- end -}}

{{/*
The forwarder's shutdown_delay (forwarder.preStopSleepSeconds, sidecar mode only): after
SIGTERM, which the kubelet sends to carbon-relay at the same moment, the forwarder keeps
listening (not ready) this long so carbon-relay can flush its queue into it, then drains. The
forwarder does it itself on every Kubernetes version: the image has no shell for an exec hook
and preStop `sleep` needs Kubernetes 1.30.
*/}}
{{- define "blueflood-forward.shutdownDelay" -}}
{{- if eq .Values.mode "sidecar" -}}{{ int .Values.forwarder.preStopSleepSeconds }}{{- else -}}0{{- end -}}
{{- end -}}

{{/* The delay, then the drain's own shutdown_timeout, then 10 s to spare. */}}
{{- define "blueflood-forward.terminationGracePeriodSeconds" -}}
{{- $needed := add (int .Values.forwarder.shutdownTimeout) (int (include "blueflood-forward.shutdownDelay" .)) -}}
{{- if kindIs "invalid" .Values.terminationGracePeriodSeconds -}}
{{- add $needed 10 -}}
{{- else if le (int .Values.terminationGracePeriodSeconds) (int $needed) -}}
{{- fail (printf "terminationGracePeriodSeconds (%d) must be greater than forwarder.shutdownTimeout plus forwarder.preStopSleepSeconds, the shutdown delay (%d): Kubernetes would kill the forwarder before it has delivered what it buffered" (int .Values.terminationGracePeriodSeconds) (int $needed)) -}}
{{- else -}}
{{- int .Values.terminationGracePeriodSeconds -}}
{{- end -}}
{{- end -}}

{{/* A TOML value: strings quoted (JSON escapes are valid TOML), whole numbers as integers. */}}
{{- define "blueflood-forward.tomlValue" -}}
{{- if kindIs "string" . -}}
{{- toJson . -}}
{{- else if kindIs "bool" . -}}
{{- ternary "true" "false" . -}}
{{- else if or (kindIs "float64" .) (kindIs "float32" .) -}}
{{- if eq (float64 .) (floor .) -}}{{- int64 . -}}{{- else -}}{{- . -}}{{- end -}}
{{- else if or (kindIs "int" .) (kindIs "int64" .) -}}
{{- . -}}
{{- else -}}
{{- fail (printf "forwarder.config: value %v is not a string, number or boolean" .) -}}
{{- end -}}
{{- end -}}

{{/* The keys the chart sets itself; forwarder.config may not set them. */}}
{{- define "blueflood-forward.managedKeys" -}}
{{- list "endpoint" "line_endpoint" "udp_endpoint" "admin_addr" "blueflood" "tenant" "metric_prefix" "ttl" "interval" "shutdown_timeout" "shutdown_delay" "log_format" "log_level" "user" "user_file" "key" "key_file" "auth_url" "auth_method" "auth_domain" "secret_name" "secret_user_key" "secret_key_key" "protocol" "config" "spool_dir" "spool_bytes" "spool_full_policy" "spool_fsync" "spool_threshold" "spool_drain_rate" | toJson -}}
{{- end -}}

{{/*
Bytes of a size: a whole number, or a Kubernetes quantity with a binary (Ki, Mi, Gi, Ti) or
decimal (k, M, G, T) suffix. Takes (dict "value" V "what" "values.path").
*/}}
{{- define "blueflood-forward.bytes" -}}
{{- $v := .value -}}
{{- if or (kindIs "float64" $v) (kindIs "int64" $v) (kindIs "int" $v) -}}
{{- if ne (float64 $v) (floor $v) -}}
{{- fail (printf "%s: %v is not a whole number of bytes" .what $v) -}}
{{- end -}}
{{- int64 $v -}}
{{- else -}}
{{- $s := toString $v | trim -}}
{{- if not (regexMatch "^(0|[1-9][0-9]*)(Ki|Mi|Gi|Ti|k|M|G|T)?$" $s) -}}
{{- fail (printf "%s: %q is not a size: use a whole number of bytes or a quantity such as 900Mi, 1Gi or 500M" .what $s) -}}
{{- end -}}
{{- $digits := regexFind "^[0-9]+" $s -}}
{{- $units := dict "" 1 "k" 1000 "M" 1000000 "G" 1000000000 "T" 1000000000000 "Ki" 1024 "Mi" 1048576 "Gi" 1073741824 "Ti" 1099511627776 -}}
{{- mul (int64 $digits) (get $units (trimPrefix $digits $s)) -}}
{{- end -}}
{{- end -}}

{{/* Bytes of the spool volume (spool.size). */}}
{{- define "blueflood-forward.spoolSizeBytes" -}}
{{- include "blueflood-forward.bytes" (dict "value" .Values.spool.size "what" "spool.size") -}}
{{- end -}}

{{/* spool_bytes: spool.bytes, or 90% of spool.size when it is empty. */}}
{{- define "blueflood-forward.spoolBytes" -}}
{{- $b := .Values.spool.bytes -}}
{{- if or (kindIs "invalid" $b) (eq (toString $b) "") -}}
{{- div (mul (int64 (include "blueflood-forward.spoolSizeBytes" .)) 9) 10 -}}
{{- else -}}
{{- include "blueflood-forward.bytes" (dict "value" $b "what" "spool.bytes") -}}
{{- end -}}
{{- end -}}

{{/* True (non-empty) when the spool lives on a PersistentVolumeClaim. */}}
{{- define "blueflood-forward.spoolPersistent" -}}
{{- if and .Values.spool.enabled .Values.spool.persistence.enabled -}}true{{- end -}}
{{- end -}}

{{- define "blueflood-forward.spoolClaimName" -}}
{{- if .Values.spool.persistence.existingClaim -}}
{{- .Values.spool.persistence.existingClaim -}}
{{- else -}}
{{- printf "%s-spool" (include "blueflood-forward.fullname" .) | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{/*
forwarder.tenant as the digits it was given. Rackspace tenants are numbers: a values file makes
`tenant: 123456` a float64 (which prints as 1.23456e+05), --set makes it an int64; the schema
allows whole numbers up to 2^53 - 1, which a float64 holds exactly.
*/}}
{{- define "blueflood-forward.tenant" -}}
{{- $t := .Values.forwarder.tenant -}}
{{- if kindIs "string" $t -}}{{ $t }}{{- else -}}{{ int64 $t }}{{- end -}}
{{- end -}}

{{/* config.toml of the forwarder. */}}
{{/* The address the pod's listeners bind: listenAddress, or all addresses. */}}
{{- define "blueflood-forward.bindAddress" -}}
{{- .Values.listenAddress | default "0.0.0.0" -}}
{{- end -}}

{{/* A twisted-style endpoint's interface option for listenAddress (nothing when unset). */}}
{{- define "blueflood-forward.interfaceOpt" -}}
{{- with .Values.listenAddress }}:interface={{ . }}{{ end -}}
{{- end -}}

{{- define "blueflood-forward.configToml" -}}
{{- /* forwarder's values, with the tenant as a string of its digits */ -}}
{{- $f := merge (dict "tenant" (include "blueflood-forward.tenant" .)) .Values.forwarder -}}
# blueflood-forward configuration, rendered by the Helm chart {{ include "blueflood-forward.chart" . }}.
# Keys are those of `blueflood-forward --help` (snake_case). The command line wins over this file.
{{- if eq .Values.mode "sidecar" }}
# Only the carbon-relay container of this pod sends here.
endpoint = {{ printf "tcp:%d:interface=127.0.0.1" (int $f.pickle.port) | toJson }}
{{- else }}
endpoint = {{ printf "tcp:%d%s" (int $f.pickle.port) (include "blueflood-forward.interfaceOpt" .) | toJson }}
{{- end }}
{{- if $f.line.enabled }}
line_endpoint = {{ printf "tcp:%d%s" (int $f.line.port) (include "blueflood-forward.interfaceOpt" .) | toJson }}
{{- end }}
{{- if $f.udp.enabled }}
udp_endpoint = {{ printf "udp:%d%s" (int $f.udp.port) (include "blueflood-forward.interfaceOpt" .) | toJson }}
{{- end }}
admin_addr = {{ printf "%s:%d" (include "blueflood-forward.bindAddress" .) (int $f.adminPort) | toJson }}
blueflood = {{ $f.blueflood | toJson }}
tenant = {{ $f.tenant | toJson }}
metric_prefix = {{ $f.prefix | toJson }}
ttl = {{ int $f.ttl }}
interval = {{ include "blueflood-forward.tomlValue" $f.interval }}
shutdown_timeout = {{ include "blueflood-forward.tomlValue" $f.shutdownTimeout }}
{{- if eq .Values.mode "sidecar" }}
# After SIGTERM: still listening (not ready) while carbon-relay flushes, then the drain.
{{- end }}
shutdown_delay = {{ include "blueflood-forward.shutdownDelay" . }}
log_format = {{ $f.logFormat | toJson }}
log_level = {{ $f.logLevel | toJson }}
{{- if .Values.auth.enabled }}
# Keystone
{{- if ne .Values.auth.method "rax-kskey" }}
auth_method = {{ .Values.auth.method | toJson }}
{{- end }}
auth_url = {{ .Values.auth.url | toJson }}
{{- if eq .Values.auth.method "v3-password" }}
auth_domain = {{ .Values.auth.domain | toJson }}
{{- end }}
{{- if eq .Values.auth.source "files" }}
# The Secret is mounted as a directory: a rotated Secret shows up here without a restart.
user_file = {{ printf "%s/%s" (trimSuffix "/" .Values.auth.mountPath) .Values.auth.usernameKey | toJson }}
key_file = {{ printf "%s/%s" (trimSuffix "/" .Values.auth.mountPath) .Values.auth.apiKeyKey | toJson }}
{{- else }}
# Read and watched through the Kubernetes API (namespace: the pod's own).
secret_name = {{ include "blueflood-forward.secretName" . | toJson }}
{{- if ne .Values.auth.usernameKey "username" }}
secret_user_key = {{ .Values.auth.usernameKey | toJson }}
{{- end }}
{{- if ne .Values.auth.apiKeyKey "apiKey" }}
secret_key_key = {{ .Values.auth.apiKeyKey | toJson }}
{{- end }}
{{- end }}
{{- end }}
{{- if include "blueflood-forward.adminToken" . }}
# /status and /metrics need `Authorization: Bearer <token>` (Secret {{ .Values.admin.token.existingSecret }}, read at start).
admin_token_file = {{ printf "%s/%s" (include "blueflood-forward.adminTokenDir" .) .Values.admin.token.secretKey | toJson }}
{{- end }}
{{- if .Values.spool.enabled }}
{{- $s := .Values.spool }}
{{- if $s.persistence.enabled }}
# Disk spool on the PersistentVolumeClaim {{ include "blueflood-forward.spoolClaimName" . }} (kept across pod deletions).
{{- else }}
# Disk spool on an emptyDir of {{ $s.size }}: kept across container restarts, lost with the pod.
{{- end }}
spool_dir = {{ $s.mountPath | toJson }}
{{- if or (kindIs "invalid" $s.bytes) (eq (toString $s.bytes) "") }}
spool_bytes = {{ include "blueflood-forward.spoolBytes" . }} # 90% of spool.size
{{- else }}
spool_bytes = {{ include "blueflood-forward.spoolBytes" . }}
{{- end }}
spool_full_policy = {{ $s.fullPolicy | toJson }}
spool_fsync = {{ include "blueflood-forward.tomlValue" $s.fsync }}
spool_threshold = {{ include "blueflood-forward.tomlValue" $s.threshold }}
spool_drain_rate = {{ include "blueflood-forward.tomlValue" $s.drainRate }}
{{- end }}
{{- with $f.config }}
# forwarder.config
{{- $managed := include "blueflood-forward.managedKeys" $ | fromJsonArray }}
{{- range $k, $v := . }}
{{- if or (has $k $managed) (has (trimSuffix "_file" $k) $managed) }}
{{- fail (printf "forwarder.config.%s: this key is set by the chart; use the chart's own value for it" $k) }}
{{- end }}
{{ $k }} = {{ include "blueflood-forward.tomlValue" $v }}
{{- end }}
{{- end }}
{{- end -}}

{{/* carbon.conf of carbon-relay: only the [relay] section is read by carbon-relay. */}}
{{- define "blueflood-forward.carbonConf" -}}
# carbon-relay configuration, rendered by the Helm chart {{ include "blueflood-forward.chart" . }}.
[relay]
USER =
STORAGE_DIR = /var/lib/carbon
LOG_DIR = /var/lib/carbon/log
PID_DIR = /var/lib/carbon
LINE_RECEIVER_INTERFACE = {{ include "blueflood-forward.bindAddress" . }}
LINE_RECEIVER_PORT = {{ int .Values.relay.linePort }}
PICKLE_RECEIVER_INTERFACE = {{ include "blueflood-forward.bindAddress" . }}
PICKLE_RECEIVER_PORT = {{ int .Values.relay.picklePort }}
ENABLE_UDP_LISTENER = False
RELAY_METHOD = rules
REPLICATION_FACTOR = 1
# Everything goes to the forwarder beside it, in carbon's pickle protocol.
DESTINATIONS = 127.0.0.1:{{ int .Values.forwarder.pickle.port }}
DESTINATION_PROTOCOL = pickle
{{- range $k, $v := .Values.relay.settings }}
{{- if has $k (list "DESTINATIONS" "DESTINATION_PROTOCOL" "RELAY_METHOD" "LINE_RECEIVER_PORT" "PICKLE_RECEIVER_PORT" "STORAGE_DIR" "LOG_DIR" "PID_DIR") }}
{{- fail (printf "relay.settings.%s is set by the chart" $k) }}
{{- end }}
{{ $k }} = {{ include "blueflood-forward.tomlValue" $v | trimPrefix "\"" | trimSuffix "\"" }}
{{- end }}
{{- end -}}

{{/*
The forwarder container. This is the named template to reuse in another chart's carbon-relay
pod: include it with this chart's root context (or a dict with the same Values, Release and
Chart), and add the volumes of "blueflood-forward.sidecarVolumes".
*/}}
{{- define "blueflood-forward.sidecarContainer" -}}
{{- $f := .Values.forwarder -}}
- name: blueflood-forward
  image: {{ include "blueflood-forward.image" . | quote }}
  imagePullPolicy: {{ .Values.image.pullPolicy }}
  args:
    - --config
    - /etc/blueflood-forward/config.toml
    {{- range $f.extraArgs }}
    - {{ . | quote }}
    {{- end }}
  env:
    - name: POD_NAMESPACE
      valueFrom:
        fieldRef:
          fieldPath: metadata.namespace
    {{- with $f.extraEnv }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
  ports:
    - name: pickle
      containerPort: {{ int $f.pickle.port }}
      protocol: TCP
    {{- if $f.line.enabled }}
    - name: line
      containerPort: {{ int $f.line.port }}
      protocol: TCP
    {{- end }}
    {{- if $f.udp.enabled }}
    - name: line-udp
      containerPort: {{ int $f.udp.port }}
      protocol: UDP
    {{- end }}
    - name: admin
      containerPort: {{ int $f.adminPort }}
      protocol: TCP
  {{- if $f.startupProbe.enabled }}
  startupProbe:
    httpGet:
      path: /livez
      port: admin
      {{- with .Values.listenAddress }}
      host: {{ . }}
      {{- end }}
    periodSeconds: {{ int $f.startupProbe.periodSeconds }}
    failureThreshold: {{ int $f.startupProbe.failureThreshold }}
  {{- end }}
  {{- if $f.livenessProbe.enabled }}
  livenessProbe:
    httpGet:
      path: /livez
      port: admin
      {{- with .Values.listenAddress }}
      host: {{ . }}
      {{- end }}
    periodSeconds: {{ int $f.livenessProbe.periodSeconds }}
    timeoutSeconds: {{ int $f.livenessProbe.timeoutSeconds }}
    failureThreshold: {{ int $f.livenessProbe.failureThreshold }}
  {{- end }}
  {{- if $f.readinessProbe.enabled }}
  readinessProbe:
    httpGet:
      path: /readyz
      port: admin
      {{- with .Values.listenAddress }}
      host: {{ . }}
      {{- end }}
    periodSeconds: {{ int $f.readinessProbe.periodSeconds }}
    timeoutSeconds: {{ int $f.readinessProbe.timeoutSeconds }}
    failureThreshold: {{ int $f.readinessProbe.failureThreshold }}
  {{- end }}
  resources:
    {{- toYaml $f.resources | nindent 4 }}
  securityContext:
    {{- toYaml $f.securityContext | nindent 4 }}
  volumeMounts:
    - name: forwarder-config
      mountPath: /etc/blueflood-forward/config.toml
      subPath: config.toml
      readOnly: true
    {{- if include "blueflood-forward.mountSecret" . }}
    # The whole Secret as a directory (no subPath): kubelet swaps in rotated keys.
    - name: keystone
      mountPath: {{ .Values.auth.mountPath }}
      readOnly: true
    {{- end }}
    {{- if include "blueflood-forward.adminToken" . }}
    # The admin token Secret as a directory too (no subPath).
    - name: admin-token
      mountPath: {{ include "blueflood-forward.adminTokenDir" . }}
      readOnly: true
    {{- end }}
    - name: tmp
      mountPath: /tmp
    {{- if .Values.spool.enabled }}
    # spool_dir: segment files, the checkpoint and the lock file (the root filesystem is read-only).
    - name: spool
      mountPath: {{ .Values.spool.mountPath }}
    {{- end }}
    {{- with $f.extraVolumeMounts }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
{{- end -}}

{{/* The volumes the forwarder container needs. */}}
{{- define "blueflood-forward.sidecarVolumes" -}}
- name: forwarder-config
  configMap:
    name: {{ include "blueflood-forward.fullname" . }}-config
{{- if include "blueflood-forward.mountSecret" . }}
- name: keystone
  secret:
    secretName: {{ include "blueflood-forward.secretName" . }}
    defaultMode: 0440
{{- end }}
{{- if include "blueflood-forward.adminToken" . }}
- name: admin-token
  secret:
    secretName: {{ .Values.admin.token.existingSecret | quote }}
    defaultMode: 0440
{{- end }}
- name: tmp
  emptyDir:
    sizeLimit: {{ .Values.tmpSizeLimit }}
{{- if .Values.spool.enabled }}
- name: spool
  {{- if .Values.spool.persistence.enabled }}
  persistentVolumeClaim:
    claimName: {{ include "blueflood-forward.spoolClaimName" . }}
  {{- else }}
  # Survives container restarts, not the pod's deletion; the kubelet evicts the pod past sizeLimit.
  emptyDir:
    sizeLimit: {{ .Values.spool.size }}
  {{- end }}
{{- end }}
{{- end -}}

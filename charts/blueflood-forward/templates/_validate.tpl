{{/* Checks across values that the JSON schema cannot express. */}}
{{- define "blueflood-forward.validate" -}}
{{- if not .Values.auth.enabled -}}
{{- /* Credentials named but authentication off would run the forwarder without them, silently. */ -}}
{{- if .Values.auth.existingSecret -}}
{{- fail (printf "auth.existingSecret (%s) is set but auth.enabled is false, so the forwarder would not authenticate: set auth.enabled=true to use that Secret, or leave auth.existingSecret empty to run without authentication" .Values.auth.existingSecret) -}}
{{- end -}}
{{- if .Values.auth.createSecret -}}
{{- fail "auth.createSecret is set but auth.enabled is false, so the forwarder would not authenticate: set auth.enabled=true, or auth.createSecret=false to run without authentication" -}}
{{- end -}}
{{- else -}}
{{- if and (not .Values.auth.existingSecret) (not .Values.auth.createSecret) -}}
{{- fail "auth.enabled needs the credentials: set auth.existingSecret (or, for testing only, auth.createSecret with auth.username and auth.apiKey)" -}}
{{- end -}}
{{- if and .Values.auth.existingSecret .Values.auth.createSecret -}}
{{- fail "set either auth.existingSecret or auth.createSecret, not both" -}}
{{- end -}}
{{- if and .Values.auth.createSecret (or (not .Values.auth.username) (not .Values.auth.apiKey)) -}}
{{- fail "auth.createSecret needs auth.username and auth.apiKey" -}}
{{- end -}}
{{- if and (eq .Values.auth.source "kubernetes-api") (not .Values.rbac.create) (not .Values.serviceAccount.name) -}}
{{- fail "auth.source=kubernetes-api needs rbac.create=true (or serviceAccount.name of an account you granted get/watch on the Secret)" -}}
{{- end -}}
{{- end -}}
{{- if and (eq .Values.mode "sidecar") (or (eq (int .Values.relay.linePort) (int .Values.forwarder.pickle.port)) (eq (int .Values.relay.picklePort) (int .Values.forwarder.pickle.port)) (eq (int .Values.relay.linePort) (int .Values.forwarder.adminPort)) (eq (int .Values.relay.picklePort) (int .Values.forwarder.adminPort))) -}}
{{- fail "relay.linePort and relay.picklePort must differ from the forwarder's pickle and admin ports: the two containers share the pod's network" -}}
{{- end -}}
{{- if and (eq .Values.mode "sidecar") .Values.forwarder.line.enabled (or (eq (int .Values.forwarder.line.port) (int .Values.relay.linePort)) (eq (int .Values.forwarder.line.port) (int .Values.relay.picklePort))) -}}
{{- fail "forwarder.line.port must differ from the relay's ports" -}}
{{- end -}}
{{- /* The admin token is set in one place only, and a scraping ServiceMonitor must know it. */ -}}
{{- $elsewhere := list -}}
{{- range $k := list "admin_token" "admin_token_file" -}}
{{- if hasKey ($.Values.forwarder.config | default dict) $k -}}
{{- $elsewhere = append $elsewhere (printf "forwarder.config.%s" $k) -}}
{{- end -}}
{{- end -}}
{{- range $e := .Values.forwarder.extraEnv -}}
{{- if and (kindIs "map" $e) (has (toString $e.name) (list "BLUEFLOOD_FORWARD_ADMIN_TOKEN" "BLUEFLOOD_FORWARD_ADMIN_TOKEN_FILE")) -}}
{{- $elsewhere = append $elsewhere (printf "forwarder.extraEnv %s" $e.name) -}}
{{- end -}}
{{- end -}}
{{- range $a := .Values.forwarder.extraArgs -}}
{{- if hasPrefix "--admin-token" (toString $a) -}}
{{- $elsewhere = append $elsewhere (printf "forwarder.extraArgs %s" (regexReplaceAll "=.*$" (toString $a) "=...")) -}}
{{- end -}}
{{- end -}}
{{- if $elsewhere -}}
{{- if include "blueflood-forward.adminToken" . -}}
{{- fail (printf "the admin token is set both by admin.token.existingSecret and by %s: set it with admin.token.* only" (join ", " $elsewhere)) -}}
{{- else if .Values.metrics.serviceMonitor.enabled -}}
{{- fail (printf "%s sets an admin token, but the ServiceMonitor would scrape /metrics without it (401): put the token in a Secret and set admin.token.existingSecret (and admin.token.secretKey) instead, so the ServiceMonitor sends it" (join ", " $elsewhere)) -}}
{{- end -}}
{{- end -}}
{{- if and (include "blueflood-forward.adminToken" .) (include "blueflood-forward.mountSecret" .) (eq (trimSuffix "/" .Values.auth.mountPath) (include "blueflood-forward.adminTokenDir" .)) -}}
{{- fail (printf "auth.mountPath must differ from %s, where the admin token Secret is mounted" (include "blueflood-forward.adminTokenDir" .)) -}}
{{- end -}}
{{- if .Values.spool.enabled -}}
{{- $s := .Values.spool -}}
{{- $size := int64 (include "blueflood-forward.spoolSizeBytes" .) -}}
{{- $bytes := int64 (include "blueflood-forward.spoolBytes" .) -}}
{{- if gt $bytes $size -}}
{{- fail (printf "spool.bytes (%d bytes) must not exceed spool.size (%s = %d bytes): the kubelet evicts a pod whose emptyDir outgrows its sizeLimit, and on a full PVC every spool write fails. Lower spool.bytes (leave room for the checkpoint and the segment being written) or leave it empty for 90%% of spool.size" $bytes (toString $s.size) $size) -}}
{{- end -}}
{{- if lt $bytes 4194304 -}}
{{- fail (printf "spool.bytes (%d bytes) is below the forwarder's minimum spool of 4 MiB (4194304 bytes): raise spool.size or spool.bytes" $bytes) -}}
{{- end -}}
{{- $mp := trimSuffix "/" $s.mountPath -}}
{{- if or (eq $mp "") (eq $mp "/tmp") (hasPrefix "/tmp/" $mp) (eq $mp "/etc/blueflood-forward") (hasPrefix "/etc/blueflood-forward/" $mp) (eq $mp (trimSuffix "/" .Values.auth.mountPath)) -}}
{{- fail (printf "spool.mountPath (%s) must be a directory of its own, not /, /tmp or under /etc/blueflood-forward (the config and the credentials are mounted there)" $s.mountPath) -}}
{{- end -}}
{{- if $s.persistence.enabled -}}
{{- if gt (int .Values.replicaCount) 1 -}}
{{- fail (printf "spool.persistence.enabled needs replicaCount: 1 (got %d): every replica would mount the same claim, and the forwarder locks its spool directory, so only one of them could start. For several replicas keep spool.persistence.enabled=false (an emptyDir per pod), or install one release (one claim) per replica" (int .Values.replicaCount)) -}}
{{- end -}}
{{- if not .Values.podSecurityContext.fsGroup -}}
{{- fail "spool.persistence.enabled needs podSecurityContext.fsGroup (e.g. 65532): without it the non-root forwarder cannot write to the volume" -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- $_ := include "blueflood-forward.terminationGracePeriodSeconds" . -}}
{{- /* Autoscaling: standalone pods with a spool each, and requests to take percentages of. */ -}}
{{- $as := .Values.autoscaling -}}
{{- if $as.enabled -}}
{{- if ne .Values.mode "standalone" -}}
{{- fail "autoscaling.enabled needs mode: standalone: in sidecar mode each pod is a carbon-relay with its forwarder, and scaling it would scale the relay, which belongs to the chart that runs it (scale that chart instead)" -}}
{{- end -}}
{{- if include "blueflood-forward.spoolPersistent" . -}}
{{- fail "autoscaling.enabled cannot be used with spool.persistence.enabled: the spool's claim has one writer (the forwarder locks its directory), so a second replica could never start. Keep spool.persistence.enabled=false (an emptyDir spool per pod) to autoscale" -}}
{{- end -}}
{{- if gt (int $as.minReplicas) (int $as.maxReplicas) -}}
{{- fail (printf "autoscaling.minReplicas (%d) is above autoscaling.maxReplicas (%d)" (int $as.minReplicas) (int $as.maxReplicas)) -}}
{{- end -}}
{{- if not (or $as.targetCPUUtilizationPercentage $as.targetMemoryUtilizationPercentage $as.pendingDatapointsPerPod) -}}
{{- fail "autoscaling.enabled needs something to scale on: autoscaling.targetCPUUtilizationPercentage, autoscaling.targetMemoryUtilizationPercentage or autoscaling.pendingDatapointsPerPod" -}}
{{- end -}}
{{- $requests := (.Values.forwarder.resources | default dict).requests | default dict -}}
{{- if and $as.targetCPUUtilizationPercentage (not $requests.cpu) -}}
{{- fail "autoscaling.targetCPUUtilizationPercentage needs forwarder.resources.requests.cpu: utilization is a percentage of the request" -}}
{{- end -}}
{{- if and $as.targetMemoryUtilizationPercentage (not $requests.memory) -}}
{{- fail "autoscaling.targetMemoryUtilizationPercentage needs forwarder.resources.requests.memory: utilization is a percentage of the request" -}}
{{- end -}}
{{- end -}}
{{- end -}}

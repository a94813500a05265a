{{/* Checks across values that the JSON schema cannot express. */}}
{{- define "blueflood-forward.validate" -}}
{{- if .Values.auth.enabled -}}
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
{{- end -}}

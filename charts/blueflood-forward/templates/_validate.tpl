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
{{- $_ := include "blueflood-forward.terminationGracePeriodSeconds" . -}}
{{- end -}}

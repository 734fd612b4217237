{{/*
The system namespace. The operator's Lease, the shared PostgreSQL and the
reconciler's Secrets live in kubeflex-system, so the release must too: the
schema fixes .Values.namespace, and this refuses another release namespace.
*/}}
{{- define "kubeflex.namespace" -}}
{{- if ne .Release.Namespace .Values.namespace -}}
{{- fail (printf "install the release into namespace %s (helm install --namespace %s), not %s" .Values.namespace .Values.namespace .Release.Namespace) -}}
{{- end -}}
{{- .Values.namespace -}}
{{- end -}}

{{- define "kubeflex.labels" -}}
app.kubernetes.io/part-of: kubeflex
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{- end -}}

{{- define "kubeflex.image" -}}
{{- printf "%s:%s" .image.repository (default .root.Chart.AppVersion .image.tag) -}}
{{- end -}}

{{/* The container security context both Deployments share. */}}
{{- define "kubeflex.containerSecurityContext" -}}
runAsNonRoot: true
runAsUser: 65532
runAsGroup: 65532
readOnlyRootFilesystem: true
allowPrivilegeEscalation: false
capabilities:
  drop: ["ALL"]
seccompProfile:
  type: RuntimeDefault
{{- end -}}

{{- define "kubeflex.podSecurityContext" -}}
runAsNonRoot: true
fsGroup: 65532
seccompProfile:
  type: RuntimeDefault
{{- end -}}

{{/* POD_NAME and POD_NAMESPACE from the downward API (Lease identity and namespace). */}}
{{- define "kubeflex.podEnv" -}}
- name: POD_NAME
  valueFrom:
    fieldRef:
      fieldPath: metadata.name
- name: POD_NAMESPACE
  valueFrom:
    fieldRef:
      fieldPath: metadata.namespace
{{- end -}}

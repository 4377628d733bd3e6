{{- define "labels" -}}
tier: {{ .Values.tier }}
env: {{ .Environment.Name }}
{{- end -}}

{{/* Chart name, truncated to a DNS label. */}}
{{- define "pipeline.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Release-qualified name; leaves room for "-worker-<engine>" suffixes. */}}
{{- define "pipeline.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 40 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 40 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 40 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "pipeline.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "pipeline.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{- define "pipeline.selectorLabels" -}}
app.kubernetes.io/name: {{ include "pipeline.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "pipeline.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}
{{- end }}

{{- define "pipeline.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "pipeline.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* pipeline.yaml: values.config with data_dir forced to the mounted data directory. */}}
{{- define "pipeline.configFile" -}}
{{- if hasKey .Values.config "database_url" }}
{{- fail "config.database_url: put the database URL in a Secret and name it in database.existingSecret (PIPELINE_DATABASE_URL)" }}
{{- end }}
{{- $config := deepCopy .Values.config }}
{{- $_ := set $config "data_dir" .Values.dataDir.mountPath }}
{{- toYaml $config }}
{{- end }}

{{/* Environment shared by every container: database URL and secrets, all by reference. */}}
{{- define "pipeline.env" -}}
- name: PIPELINE_CONFIG
  value: /etc/pipeline/pipeline.yaml
- name: HOME
  value: /home/pipeline
- name: PIPELINE_DATABASE_URL
  valueFrom:
    secretKeyRef:
      name: {{ required "database.existingSecret: name the Secret that holds the PostgreSQL URL" .Values.database.existingSecret }}
      key: {{ .Values.database.secretKey }}
{{- if .Values.dockerConfig.existingSecret }}
- name: DOCKER_CONFIG
  value: /etc/pipeline/docker
{{- end }}
{{- range .Values.secretEnv }}
- name: {{ required "secretEnv[].name is required" .name }}
  valueFrom:
    secretKeyRef:
      name: {{ required (printf "secretEnv %s: secretName is required" .name) .secretName }}
      key: {{ required (printf "secretEnv %s: key is required" .name) .key }}
{{- end }}
{{- with .Values.extraEnv }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/* Mounts shared by every container; the root filesystem stays read-only. */}}
{{- define "pipeline.volumeMounts" -}}
- name: config
  mountPath: /etc/pipeline/pipeline.yaml
  subPath: pipeline.yaml
  readOnly: true
- name: data
  mountPath: {{ .Values.dataDir.mountPath }}
- name: tmp
  mountPath: /tmp
- name: home
  mountPath: /home/pipeline
{{- if .Values.dockerConfig.existingSecret }}
- name: docker-config
  mountPath: /etc/pipeline/docker
  readOnly: true
{{- end }}
{{- range .Values.secretMounts }}
- name: secret-{{ .name }}
  mountPath: {{ required (printf "secretMounts %s: mountPath is required" .name) .mountPath }}
  readOnly: true
{{- end }}
{{- end }}

{{/* Volumes behind pipeline.volumeMounts except "config" and "data" (they differ per pod). */}}
{{- define "pipeline.commonVolumes" -}}
- name: tmp
  emptyDir: {}
- name: home
  emptyDir: {}
{{- if .Values.dockerConfig.existingSecret }}
- name: docker-config
  secret:
    secretName: {{ .Values.dockerConfig.existingSecret }}
    items:
      - {key: .dockerconfigjson, path: config.json}
{{- end }}
{{- range .Values.secretMounts }}
- name: secret-{{ .name }}
  secret:
    secretName: {{ required (printf "secretMounts %s: secretName is required" .name) .secretName }}
    {{- /* 288 = 0440: readable by the pod's fsGroup, not by others */}}
    defaultMode: {{ .defaultMode | default 288 }}
{{- end }}
{{- end }}

{{/* The BuildKit StatefulSet's and its headless Service's name. */}}
{{- define "pipeline.buildkitName" -}}
{{- printf "%s-buildkit" (include "pipeline.fullname" .) }}
{{- end }}

{{/* One `buildkit:` builder per daemon of the StatefulSet, by its stable DNS name. */}}
{{- define "pipeline.buildkitBuilders" -}}
{{- $name := include "pipeline.buildkitName" . }}
{{- $builders := list }}
{{- range $i := until (int .Values.buildkit.replicas) }}
{{- $builder := dict "name" (printf "buildkit-%d" $i) "buildkit" (printf "tcp://%s-%d.%s.%s.svc:%d" $name $i $name $.Release.Namespace (int $.Values.buildkit.port)) "ca_file" "/etc/pipeline/buildkit-tls/ca.pem" "cert_file" "/etc/pipeline/buildkit-tls/cert.pem" "key_file" "/etc/pipeline/buildkit-tls/key.pem" }}
{{- with $.Values.buildkit.platforms }}
{{- $_ := set $builder "platforms" . }}
{{- end }}
{{- with $.Values.buildkit.maxParallel }}
{{- $_ := set $builder "max_parallel" (int .) }}
{{- end }}
{{- $builders = append $builders $builder }}
{{- end }}
{{- toYaml $builders }}
{{- end }}

{{/* pipeline.yaml of the BuildKit workers: the config with the farm as its builders. */}}
{{- define "pipeline.buildkitConfigFile" -}}
{{- $config := fromYaml (include "pipeline.configFile" .) }}
{{- $docker := deepCopy (get $config "docker" | default dict) }}
{{- $_ := unset $docker "hosts" }}
{{- $_ := set $config "docker" $docker }}
{{- $_ := set $config "builders" (fromYamlArray (include "pipeline.buildkitBuilders" .)) }}
{{- toYaml $config }}
{{- end }}

{{/* Checksum of the config so pods restart when it changes. */}}
{{- define "pipeline.configChecksum" -}}
{{- include "pipeline.configFile" . | sha256sum }}
{{- end }}

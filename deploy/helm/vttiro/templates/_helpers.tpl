{{/* Names */}}
{{- define "vttiro.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "vttiro.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "vttiro.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Selector labels of one component: dict "ctx" $ "component" "api" */}}
{{- define "vttiro.selectorLabels" -}}
app.kubernetes.io/name: {{ include "vttiro.name" .ctx }}
app.kubernetes.io/instance: {{ .ctx.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{/* The recommended labels: dict "ctx" $ "component" "api" */}}
{{- define "vttiro.labels" -}}
{{ include "vttiro.selectorLabels" . }}
app.kubernetes.io/version: {{ .ctx.Chart.AppVersion | quote }}
app.kubernetes.io/part-of: vttiro
app.kubernetes.io/managed-by: {{ .ctx.Release.Service }}
helm.sh/chart: {{ include "vttiro.chart" .ctx }}
{{- with .ctx.Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{- define "vttiro.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "vttiro.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "vttiro.dataClaim" -}}
{{- default (printf "%s-data" (include "vttiro.fullname" .)) .Values.persistence.existingClaim }}
{{- end }}

{{- define "vttiro.modelClaim" -}}
{{- default (printf "%s-models" (include "vttiro.fullname" .)) .Values.model.persistence.existingClaim }}
{{- end }}

{{/* The image: dict "ctx" $ "gpu" true|false */}}
{{- define "vttiro.image" -}}
{{- $img := .ctx.Values.image }}
{{- $tag := default .ctx.Chart.AppVersion $img.tag }}
{{- if .gpu }}
{{- if .ctx.Values.worker.gpu.imageDigest }}
{{- printf "%s@%s" $img.repository .ctx.Values.worker.gpu.imageDigest }}
{{- else }}
{{- printf "%s:%s%s" $img.repository $tag $img.gpuTagSuffix }}
{{- end }}
{{- else if $img.digest }}
{{- printf "%s@%s" $img.repository $img.digest }}
{{- else }}
{{- printf "%s:%s" $img.repository $tag }}
{{- end }}
{{- end }}

{{/* Pod annotations for the chosen service mesh: dict "ctx" $ "job" true|false */}}
{{- define "vttiro.meshAnnotations" -}}
{{- $mesh := .ctx.Values.serviceMesh }}
{{- if eq $mesh "istio" }}
{{- if .job }}
sidecar.istio.io/inject: "false"
{{- else }}
sidecar.istio.io/inject: "true"
proxy.istio.io/config: '{"holdApplicationUntilProxyStarts": true}'
{{- end }}
{{- else if eq $mesh "linkerd" }}
{{- if .job }}
linkerd.io/inject: disabled
{{- else }}
linkerd.io/inject: enabled
config.linkerd.io/proxy-await: enabled
{{- end }}
{{- end }}
{{- end }}

{{/* Required anti-affinity and zone/node spread of one component: dict "ctx" $ "component" "api" "spec" .Values.api */}}
{{- define "vttiro.scheduling" -}}
{{- $selector := include "vttiro.selectorLabels" . | fromYaml }}
{{- with .spec.nodeSelector }}
nodeSelector:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .spec.tolerations }}
tolerations:
  {{- toYaml . | nindent 2 }}
{{- end }}
affinity:
  {{- with .spec.nodeAffinity }}
  nodeAffinity:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  podAntiAffinity:
    {{- if eq .spec.podAntiAffinity "hard" }}
    requiredDuringSchedulingIgnoredDuringExecution:
      - topologyKey: kubernetes.io/hostname
        labelSelector:
          matchLabels:
            {{- toYaml $selector | nindent 12 }}
    {{- else }}
    preferredDuringSchedulingIgnoredDuringExecution:
      - weight: 100
        podAffinityTerm:
          topologyKey: kubernetes.io/hostname
          labelSelector:
            matchLabels:
              {{- toYaml $selector | nindent 14 }}
    {{- end }}
{{- if .spec.topologySpread.enabled }}
topologySpreadConstraints:
  - topologyKey: topology.kubernetes.io/zone
    maxSkew: {{ .spec.topologySpread.maxSkew }}
    whenUnsatisfiable: {{ .spec.topologySpread.whenUnsatisfiable }}
    labelSelector:
      matchLabels:
        {{- toYaml $selector | nindent 8 }}
    matchLabelKeys:
      - pod-template-hash
  - topologyKey: kubernetes.io/hostname
    maxSkew: 1
    whenUnsatisfiable: ScheduleAnyway
    labelSelector:
      matchLabels:
        {{- toYaml $selector | nindent 8 }}
    matchLabelKeys:
      - pod-template-hash
{{- end }}
{{- end }}

{{/* Environment shared by every vttiro container that opens the queue and the store. */}}
{{- define "vttiro.commonEnv" -}}
- name: HOME
  value: /tmp
- name: VTTIRO_DATA_DIR
  value: /data
- name: VTTIRO_MODEL_DIR
  value: /models
- name: VTTIRO_MODEL
  value: {{ .Values.model.name | quote }}
- name: VTTIRO_LOG
  value: {{ .Values.config.log | quote }}
- name: VTTIRO_LOG_FORMAT
  value: {{ .Values.config.logFormat | quote }}
- name: VTTIRO_LEASE_SECS
  value: {{ .Values.config.leaseSeconds | quote }}
{{- if .Values.config.allowInternalUrls }}
- name: VTTIRO_ALLOW_INTERNAL_URLS
  value: "true"
{{- end }}
- name: VTTIRO_DATABASE_URL
  valueFrom:
    secretKeyRef:
      name: {{ .Values.secrets.existingSecret }}
      key: {{ .Values.secrets.databaseUrlKey }}
{{- if .Values.secrets.webhookSecretKey }}
- name: VTTIRO_WEBHOOK_SECRET
  valueFrom:
    secretKeyRef:
      name: {{ .Values.secrets.existingSecret }}
      key: {{ .Values.secrets.webhookSecretKey }}
{{- end }}
{{- if .Values.secrets.authSecretKey }}
- name: VTTIRO_AUTH_SECRET
  valueFrom:
    secretKeyRef:
      name: {{ .Values.secrets.existingSecret }}
      key: {{ .Values.secrets.authSecretKey }}
{{- end }}
{{- if .Values.encryption.enabled }}
- name: VTTIRO_MASTER_KEY_FILE
  value: /run/vttiro/keys/master-keys
{{- end }}
{{- if .Values.config.otlpEndpoint }}
- name: OTEL_EXPORTER_OTLP_ENDPOINT
  value: {{ .Values.config.otlpEndpoint | quote }}
{{- end }}
{{- with .Values.objectStorage.url }}
- name: VTTIRO_STORE
  value: {{ . | quote }}
{{- end }}
{{- with .Values.objectStorage.env }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/*
The master key file must be readable by its owner only (the binary refuses any group or
other bit), but kubelet gives Secret volume files to root and, with fsGroup, adds group
read (kubernetes/kubernetes#57923). So an init container running as 10001 copies the key
into a memory-backed emptyDir with mode 0400, owned by 10001.
*/}}
{{- define "vttiro.masterKeyInit" -}}
{{- if .Values.encryption.enabled }}
- name: install-master-keys
  image: {{ include "vttiro.image" (dict "ctx" . "gpu" false) }}
  imagePullPolicy: {{ .Values.image.pullPolicy }}
  command:
    - install
    - -m
    - "0400"
    - /run/vttiro/master-key-secret/{{ .Values.encryption.key }}
    - /run/vttiro/keys/master-keys
  securityContext:
    {{- toYaml .Values.containerSecurityContext | nindent 4 }}
  resources:
    {{- toYaml .Values.initResources | nindent 4 }}
  volumeMounts:
    - name: master-key-secret
      mountPath: /run/vttiro/master-key-secret
      readOnly: true
    - name: master-keys
      mountPath: /run/vttiro/keys
{{- end }}
{{- end }}

{{- define "vttiro.masterKeyVolumes" -}}
{{- if .Values.encryption.enabled }}
- name: master-key-secret
  secret:
    secretName: {{ default .Values.secrets.existingSecret .Values.encryption.existingSecret }}
    defaultMode: 288 # 0440: owner and group (fsGroup) read
    items:
      - key: {{ .Values.encryption.key }}
        path: {{ .Values.encryption.key }}
- name: master-keys
  emptyDir:
    medium: Memory
    sizeLimit: 1Mi
{{- end }}
{{- end }}

{{- define "vttiro.masterKeyMount" -}}
{{- if .Values.encryption.enabled }}
- name: master-keys
  mountPath: /run/vttiro/keys
  readOnly: true
{{- end }}
{{- end }}

{{/* Refuse values that render but cannot work. */}}
{{- define "vttiro.validate" -}}
{{- if not .Values.secrets.existingSecret }}
{{- fail "secrets.existingSecret must name the Secret holding the database URL" }}
{{- end }}
{{- if and .Values.api.autoscaling.enabled (gt (int .Values.api.autoscaling.minReplicas) (int .Values.api.autoscaling.maxReplicas)) }}
{{- fail "api.autoscaling.minReplicas is above api.autoscaling.maxReplicas" }}
{{- end }}
{{- if and .Values.worker.autoscaling.enabled (gt (int .Values.worker.autoscaling.minReplicas) (int .Values.worker.autoscaling.maxReplicas)) }}
{{- fail "worker.autoscaling.minReplicas is above worker.autoscaling.maxReplicas" }}
{{- end }}
{{- if and .Values.worker.autoscaling.enabled (not .Values.worker.enabled) }}
{{- fail "worker.autoscaling.enabled needs worker.enabled" }}
{{- end }}
{{- if and .Values.secrets.externalSecret.enabled (not .Values.secrets.externalSecret.secretStoreRef.name) }}
{{- fail "secrets.externalSecret.enabled needs secrets.externalSecret.secretStoreRef.name" }}
{{- end }}
{{- if and (not .Values.model.persistence.enabled) (not .Values.model.pull.enabled) }}
{{- fail "model.persistence.enabled=false gives each worker an empty cache: keep model.pull.enabled" }}
{{- end }}
{{- if and (not .Values.persistence.enabled) (not (and .Values.objectStorage.url .Values.secrets.authSecretKey .Values.secrets.webhookSecretKey)) }}
{{- fail "persistence.enabled=false needs objectStorage.url, secrets.authSecretKey and secrets.webhookSecretKey: otherwise objects or generated secrets would live on a volume each pod has its own copy of" }}
{{- end }}
{{- if and .Values.persistence.enabled (not .Values.persistence.existingClaim) (not (has "ReadWriteMany" .Values.persistence.accessModes)) }}
{{- fail "persistence.accessModes must include ReadWriteMany: API and worker pods on different nodes share the data volume" }}
{{- end }}
{{- end }}

{{/* Egress every vttiro pod needs: DNS, the queue database (dict "ctx" $ "database" true), HTTP(S) out. */}}
{{- define "vttiro.egressRules" -}}
{{- $np := .ctx.Values.networkPolicy }}
- ports:
    - port: 53
      protocol: UDP
    - port: 53
      protocol: TCP
{{- if .database }}
- ports:
    - port: {{ $np.database.port }}
      protocol: TCP
  {{- with $np.database.to }}
  to:
    {{- toYaml . | nindent 4 }}
  {{- end }}
{{- end }}
{{- if $np.internet.enabled }}
- ports:
    {{- range $np.internet.ports }}
    - port: {{ . }}
      protocol: TCP
    {{- end }}
  to:
    - ipBlock:
        cidr: 0.0.0.0/0
        {{- with $np.internet.except }}
        except:
          {{- toYaml . | nindent 10 }}
        {{- end }}
    - ipBlock:
        cidr: ::/0
{{- end }}
{{- with $np.extraEgress }}
{{ toYaml . }}
{{- end }}
{{- end }}

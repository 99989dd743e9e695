{{- define "file-processor.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* The name of the release's objects, or its start: a Service's too, hence a DNS-1035 label. Helm lets a release
name start with a digit or hold dots; the API server would refuse the Services only halfway through the install. */}}
{{- define "file-processor.fullname" -}}
{{- $fullname := "" }}
{{- if .Values.fullnameOverride }}
{{- $fullname = .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- $fullname = .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $fullname = printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- if not (regexMatch "^[a-z]([-a-z0-9]*[a-z0-9])?$" $fullname) }}
{{- fail (printf "the release's objects would be named %s..., which Kubernetes refuses for a Service (lowercase letters, digits and '-', starting with a letter): choose another release name, or set fullnameOverride" $fullname) }}
{{- end }}
{{- $fullname }}
{{- end }}

{{/* The name of one of the release's objects, <fullname>-<suffix>, as it is when it fits in 63 characters (a
Service's name; a Job's and a ScaledObject's end up in label values). Longer, the fullname is cut and followed by 8
hex digits of the whole name's hash, then the suffix: two long names never meet, and each still says what it is.
Pass (list $ "worker-heavy"); suffixes are at most 37 characters ("worker-" and a pool name). */}}
{{- define "file-processor.objectName" -}}
{{- $fullname := include "file-processor.fullname" (first .) }}
{{- $suffix := last . }}
{{- $name := printf "%s-%s" $fullname $suffix }}
{{- if le (len $name) 63 }}
{{- $name }}
{{- else }}
{{- $room := sub 63 (add (len $suffix) 10) | int }}
{{- printf "%s-%s-%s" ($fullname | trunc $room | trimSuffix "-") ($name | sha256sum | trunc 8) $suffix }}
{{- end }}
{{- end }}

{{/* Labels of every object; pass (dict "root" $ "component" "api"). */}}
{{- define "file-processor.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .root.Chart.Name .root.Chart.Version | replace "+" "_" }}
{{ include "file-processor.selectorLabels" . }}
app.kubernetes.io/version: {{ .root.Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .root.Release.Service }}
app.kubernetes.io/part-of: file-processor
{{- end }}

{{/* Pass (dict "root" $ "component" "worker" "pool" "heavy") for a worker pool's pods. */}}
{{- define "file-processor.selectorLabels" -}}
app.kubernetes.io/name: {{ include "file-processor.name" .root }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
{{- with .component }}
app.kubernetes.io/component: {{ . }}
{{- end }}
{{- with .pool }}
file-processor.io/pool: {{ . }}
{{- end }}
{{- end }}

{{- define "file-processor.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "file-processor.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* repository:tag, or repository@digest; pass (dict "root" $ "image" .Values.image.api). */}}
{{- define "file-processor.image" -}}
{{- if .image.digest }}
{{- printf "%s@%s" .image.repository .image.digest }}
{{- else }}
{{- printf "%s:%s" .image.repository (default .root.Chart.AppVersion .image.tag) }}
{{- end }}
{{- end }}

{{- define "file-processor.secretName" -}}
{{- include "file-processor.fullname" . }}
{{- end }}

{{- define "file-processor.databaseSecretName" -}}
{{- default (include "file-processor.secretName" .) .Values.database.existingSecret }}
{{- end }}

{{- define "file-processor.redisSecretName" -}}
{{- default (include "file-processor.secretName" .) .Values.redis.existingSecret }}
{{- end }}

{{- define "file-processor.apiTokensSecretName" -}}
{{- if .Values.apiTokens.existingSecret }}
{{- .Values.apiTokens.existingSecret }}
{{- else if .Values.apiTokens.tokens }}
{{- include "file-processor.secretName" . }}
{{- else }}
{{- include "file-processor.generatedApiTokenSecretName" . }}
{{- end }}
{{- end }}

{{- define "file-processor.generatedApiTokenSecretName" -}}
{{- include "file-processor.objectName" (list . "api-token") }}
{{- end }}

{{/* Whether the API gets bearer tokens: the operator's, or the one the chart generates. */}}
{{- define "file-processor.hasApiTokens" -}}
{{- if or .Values.apiTokens.existingSecret .Values.apiTokens.tokens (include "file-processor.generatesApiToken" .) }}true{{ end }}
{{- end }}

{{/* Secure by default: a public route without tokens gets a generated one, unless apiTokens.allowAnonymous. */}}
{{- define "file-processor.generatesApiToken" -}}
{{- $public := or .Values.ingress.enabled .Values.httpRoute.enabled }}
{{- $tokens := or .Values.apiTokens.existingSecret .Values.apiTokens.tokens }}
{{- if and $public (not $tokens) (not .Values.apiTokens.allowAnonymous) }}true{{ end }}
{{- end }}

{{/* The generated token: the one the release's Secret already holds (so upgrades keep it), else a new one.
`lookup` answers nothing in `helm template` and client-side dry runs, which therefore show a new token each time. */}}
{{- define "file-processor.generatedApiToken" -}}
{{- $key := .Values.apiTokens.existingSecretKey }}
{{- $existing := lookup "v1" "Secret" .Release.Namespace (include "file-processor.generatedApiTokenSecretName" .) }}
{{- $stored := dig "data" $key "" $existing }}
{{- if $stored }}
{{- $stored | b64dec }}
{{- else }}
{{- randAlphaNum 40 }}
{{- end }}
{{- end }}

{{/* Whether the chart makes the Secret (anything not taken from an existing Secret). */}}
{{- define "file-processor.createsSecret" -}}
{{- if or (not .Values.database.existingSecret) (not .Values.redis.existingSecret) (and .Values.apiTokens.tokens (not .Values.apiTokens.existingSecret)) }}true{{ end }}
{{- end }}

{{/* A piece of a URL's userinfo, percent-decoded as the app decodes it. Helm has no decoding function, but urlParse
gives a URL's path decoded; userinfo as urlParse gives it has every '/', '?', '#' and '%' encoded, so it is all path. */}}
{{- define "file-processor.percentDecoded" -}}
{{- (urlParse (printf "decode:///%s" .)).path | trimPrefix "/" }}
{{- end }}

{{/* The Redis password for KEDA, which takes it alone: redis.password, or that of redis.url decoded, which the app
reads as everything after the userinfo's first ':' (a raw ':' included). urlParse gives userinfo re-encoded. */}}
{{- define "file-processor.redisPassword" -}}
{{- if not .Values.redis.existingSecret }}
{{- $userinfo := (urlParse .Values.redis.url).userinfo }}
{{- if .Values.redis.password }}
{{- .Values.redis.password }}
{{- else if contains ":" $userinfo }}
{{- include "file-processor.percentDecoded" (splitn ":" 2 $userinfo)._1 }}
{{- end }}
{{- end }}
{{- end }}

{{/* The ACL username of redis.url (Redis 6+), decoded, for the Secret and KEDA; empty for the default user. */}}
{{- define "file-processor.redisUsername" -}}
{{- if not .Values.redis.existingSecret }}
{{- $userinfo := (urlParse .Values.redis.url).userinfo }}
{{- if contains ":" $userinfo }}{{ include "file-processor.percentDecoded" (splitn ":" 2 $userinfo)._0 }}{{ end }}
{{- end }}
{{- end }}

{{/* Where the TriggerAuthentication finds the Redis username: "name/key", or empty for the default user. */}}
{{- define "file-processor.redisUsernameRef" -}}
{{- if .Values.redis.existingSecret }}
{{- with .Values.redis.existingSecretUsernameKey }}{{ $.Values.redis.existingSecret }}/{{ . }}{{ end }}
{{- else if include "file-processor.redisUsername" . }}
{{- include "file-processor.secretName" . }}/redis-username
{{- end }}
{{- end }}

{{/* Where the TriggerAuthentication finds the Redis password: "name/key", or empty when Redis has none. */}}
{{- define "file-processor.redisPasswordRef" -}}
{{- if .Values.redis.existingSecret }}
{{- with .Values.redis.existingSecretPasswordKey }}{{ $.Values.redis.existingSecret }}/{{ . }}{{ end }}
{{- else if include "file-processor.redisPassword" . }}
{{- include "file-processor.secretName" . }}/redis-password
{{- end }}
{{- end }}

{{/* The values that still point at k8s/dev's PostgreSQL or Redis (the defaults), for NOTES.txt to warn about each:
a YAML list of {value, host, store, instead}. A URL in an existing Secret is not the chart's to read. */}}
{{- define "file-processor.trialStores" -}}
{{- $given := list }}
{{- if not .Values.database.existingSecret }}
{{- $given = append $given (dict "value" "database.url" "host" (urlParse .Values.database.url).hostname "trial" "file-processor-postgres" "store" "PostgreSQL" "instead" "database.existingSecret") }}
{{- end }}
{{- if not .Values.redis.existingSecret }}
{{- $given = append $given (dict "value" "redis.url" "host" (urlParse .Values.redis.url).hostname "trial" "file-processor-redis" "store" "Redis" "instead" "redis.existingSecret") }}
{{- end }}
{{- with .Values.redis.address }}
{{- $given = append $given (dict "value" "redis.address" "host" (first (splitList ":" .)) "trial" "file-processor-redis" "store" "Redis") }}
{{- end }}
{{- $trial := list }}
{{- range $given }}
{{- if or (eq .host .trial) (hasPrefix (printf "%s." .trial) .host) }}
{{- $trial = append $trial . }}
{{- end }}
{{- end }}
{{- toYaml $trial }}
{{- end }}

{{- define "file-processor.redisAddress" -}}
{{- if .Values.redis.address }}
{{- .Values.redis.address }}
{{- else if .Values.redis.existingSecret }}
{{- fail "redis.address (host:port) is needed for KEDA when the Redis URL comes from redis.existingSecret" }}
{{- else }}
{{- $host := (urlParse .Values.redis.url).host }}
{{- if contains ":" $host }}{{ $host }}{{ else }}{{ $host }}:6379{{ end }}
{{- end }}
{{- end }}

{{/* A setting from `config` as text: numbers as written (YAML turns big ones into floats), booleans as true/false. */}}
{{- define "file-processor.setting" -}}
{{- if kindIs "float64" . }}{{ . | int64 }}{{ else }}{{ . }}{{ end }}
{{- end }}

{{/* SHUTDOWN_TIMEOUT_MS in whole seconds, rounded up. */}}
{{- define "file-processor.shutdownSeconds" -}}
{{- $ms := include "file-processor.setting" (.Values.config.SHUTDOWN_TIMEOUT_MS | default "25000") | int64 }}
{{- div (add $ms 999) 1000 }}
{{- end }}

{{/* MAX_UPLOAD_BYTES in bytes, with the units core/config.ts accepts (all binary). */}}
{{- define "file-processor.maxUploadBytes" -}}
{{- $raw := include "file-processor.setting" (.Values.config.MAX_UPLOAD_BYTES | default "100MiB") | trim | lower }}
{{- $number := regexFind "^[0-9]+" $raw }}
{{- $unit := trimPrefix $number $raw | trim }}
{{- $units := dict "" 1 "b" 1 "k" 1024 "kb" 1024 "kib" 1024 "m" 1048576 "mb" 1048576 "mib" 1048576 "g" 1073741824 "gb" 1073741824 "gib" 1073741824 }}
{{- if or (not $number) (not (hasKey $units $unit)) }}
{{- fail (printf "config.MAX_UPLOAD_BYTES must be a size such as 104857600 or 100MiB, got %q" $raw) }}
{{- end }}
{{- mul ($number | int64) (get $units $unit) }}
{{- end }}

{{/* Pod-level settings shared by the API, the workers, the migration and the test. */}}
{{- define "file-processor.podDefaults" -}}
securityContext:
  {{- toYaml .Values.podSecurityContext | nindent 2 }}
{{- with .Values.imagePullSecrets }}
imagePullSecrets:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end }}

{{/* DATABASE_URL and REDIS_URL from their Secrets. */}}
{{- define "file-processor.connectionEnv" -}}
- name: DATABASE_URL
  valueFrom:
    secretKeyRef:
      name: {{ include "file-processor.databaseSecretName" . }}
      key: {{ .Values.database.existingSecretKey }}
- name: REDIS_URL
  valueFrom:
    secretKeyRef:
      name: {{ include "file-processor.redisSecretName" . }}
      key: {{ .Values.redis.existingSecretKey }}
{{- end }}

{{- define "file-processor.apiTokensMountPath" -}}/var/run/secrets/file-processor{{- end }}

{{/* API_TOKENS_FILE pointing at the mounted token Secret, when tokens are configured. */}}
{{- define "file-processor.apiTokensEnv" -}}
{{- if include "file-processor.hasApiTokens" . }}
- name: API_TOKENS_FILE
  value: {{ include "file-processor.apiTokensMountPath" . }}/{{ .Values.apiTokens.existingSecretKey }}
{{- end }}
{{- end }}

{{- define "file-processor.apiTokensVolumeMount" -}}
{{- if include "file-processor.hasApiTokens" . }}
- name: api-tokens
  mountPath: {{ include "file-processor.apiTokensMountPath" . }}
  readOnly: true
{{- end }}
{{- end }}

{{- define "file-processor.apiTokensVolume" -}}
{{- if include "file-processor.hasApiTokens" . }}
- name: api-tokens
  secret:
    secretName: {{ include "file-processor.apiTokensSecretName" . }}
    items:
      - key: {{ .Values.apiTokens.existingSecretKey }}
        path: {{ .Values.apiTokens.existingSecretKey }}
{{- end }}
{{- end }}

{{/* Topology spread constraints for a component; pass (dict "root" $ "component" "api" "spread" .Values.api.topologySpread). */}}
{{- define "file-processor.topologySpread" -}}
{{- range .spread }}
- maxSkew: {{ .maxSkew | default 1 }}
  topologyKey: {{ .topologyKey }}
  whenUnsatisfiable: {{ .whenUnsatisfiable | default "ScheduleAnyway" }}
  labelSelector:
    matchLabels:
      {{- include "file-processor.selectorLabels" $ | nindent 6 }}
{{- end }}
{{- end }}

{{/* A Deployment's pod-template labels and annotations; pass (dict "root" $ "component" "api"). */}}
{{- define "file-processor.podMetadata" -}}
{{- $values := get .root.Values .component -}}
labels:
  {{- include "file-processor.labels" . | nindent 2 }}
  {{- with $values.podLabels }}
  {{- toYaml . | nindent 2 }}
  {{- end }}
annotations:
  {{- include "file-processor.checksums" .root | nindent 2 }}
  {{- with $values.podAnnotations }}
  {{- toYaml . | nindent 2 }}
  {{- end }}
{{- end }}

{{/* Where a component's pods may run: spread, node selector, tolerations, affinity; empty when none is set.
Pass (dict "root" $ "component" "api"), and "pool" for a worker pool, whose pods spread among themselves. */}}
{{- define "file-processor.scheduling" -}}
{{- $values := get .root.Values .component }}
{{- with $values.topologySpread }}
topologySpreadConstraints:
  {{- include "file-processor.topologySpread" (dict "root" $.root "component" $.component "pool" $.pool "spread" .) | trim | nindent 2 }}
{{- end }}
{{- with $values.nodeSelector }}
nodeSelector:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with $values.tolerations }}
tolerations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with $values.affinity }}
affinity:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end }}

{{/* The ConfigMap and Secret a pod reads: a change rolls the pods. */}}
{{- define "file-processor.checksums" -}}
checksum/config: {{ include (print .Template.BasePath "/configmap.yaml") . | sha256sum }}
checksum/secret: {{ include (print .Template.BasePath "/secret.yaml") . | sha256sum }}
{{- end }}

{{/* What both Deployments' containers share: settings, URLs, the chart-owned variables, security, blob volume. */}}
{{- define "file-processor.containerDefaults" -}}
imagePullPolicy: {{ .root.Values.image.pullPolicy }}
envFrom:
  - configMapRef:
      name: {{ include "file-processor.fullname" .root }}
env:
  {{- include "file-processor.connectionEnv" .root | nindent 2 }}
  - name: HOST
    value: 0.0.0.0
  {{- include "file-processor.storageEnv" .root | trim | nindent 2 }}
  - name: ADMIN_PORT
    value: {{ .adminPort | quote }}
  {{- with .env }}
  {{- toYaml . | nindent 2 }}
  {{- end }}
  {{- with .root.Values.extraEnv }}
  {{- toYaml . | nindent 2 }}
  {{- end }}
securityContext:
  {{- toYaml .root.Values.securityContext | nindent 2 }}
livenessProbe:
  httpGet: { path: /healthz, port: admin }
  periodSeconds: 10
  timeoutSeconds: 3
  failureThreshold: 3
readinessProbe:
  httpGet: { path: /readyz, port: admin }
  periodSeconds: 5
  timeoutSeconds: 3
  failureThreshold: 2
{{- end }}

{{/* Whether the blobs live in an S3 bucket (storage.type s3) rather than on the shared volume. */}}
{{- define "file-processor.usesBucket" -}}
{{- if eq .Values.storage.type "s3" }}true{{ end }}
{{- end }}

{{/* Where the blobs are: STORAGE_DIR on the volume, or the bucket's settings and, from a Secret, its keys. */}}
{{- define "file-processor.storageEnv" -}}
{{- if include "file-processor.usesBucket" . }}
{{- $s3 := .Values.storage.s3 }}
{{- if not $s3.bucket }}{{ fail "storage.type s3 needs storage.s3.bucket, the name of an existing bucket" }}{{ end }}
- name: BLOB_STORE
  value: s3
- name: S3_BUCKET
  value: {{ $s3.bucket | quote }}
- name: S3_PREFIX
  value: {{ $s3.prefix | quote }}
- name: S3_ENDPOINT
  value: {{ $s3.endpoint | quote }}
- name: S3_REGION
  value: {{ $s3.region | quote }}
- name: S3_FORCE_PATH_STYLE
  value: {{ $s3.forcePathStyle | quote }}
{{- with $s3.existingSecret }}
- name: AWS_ACCESS_KEY_ID
  valueFrom:
    secretKeyRef:
      name: {{ . }}
      key: {{ $s3.accessKeyIdKey }}
- name: AWS_SECRET_ACCESS_KEY
  valueFrom:
    secretKeyRef:
      name: {{ . }}
      key: {{ $s3.secretAccessKeyKey }}
{{- end }}
{{- else }}
- name: STORAGE_DIR
  value: /data
{{- end }}
{{- end }}

{{/* The shared volume (disk store only) and /tmp, where the worker also stages objects for its parsers. */}}
{{- define "file-processor.blobVolume" -}}
{{- if not (include "file-processor.usesBucket" .) }}
- name: blobs
  persistentVolumeClaim:
    claimName: {{ .Values.persistence.existingClaim | default (include "file-processor.objectName" (list . "blobs")) }}
{{- end }}
- name: tmp
  emptyDir: {}
{{- end }}

{{- define "file-processor.blobVolumeMounts" -}}
{{- if not (include "file-processor.usesBucket" .) }}
- name: blobs
  mountPath: /data
{{- end }}
- name: tmp
  mountPath: /tmp
{{- end }}

{{/* The file kinds of core/results (FILE_KINDS), space-separated; a chart test fails when they differ. */}}
{{- define "file-processor.fileKinds" -}}
image text pdf document archive audio video other
{{- end }}

{{/* Fails unless every kind is in exactly one of worker.pools (a pool with kinds ["*"] takes the rest), naming
the kind; JSON schema can check each pool's shape but not this, which spans the list. */}}
{{- define "file-processor.checkWorkerPools" -}}
{{- $poolOf := dict }}
{{- $names := dict }}
{{- $rest := "" }}
{{- range $pool := .Values.worker.pools }}
{{- if hasKey $names $pool.name }}
{{- fail (printf "worker.pools: two pools are named %s; each pool is a queue of its own" $pool.name) }}
{{- end }}
{{- $_ := set $names $pool.name true }}
{{- range $kind := $pool.kinds }}
{{- if eq $kind "*" }}
{{- if $rest }}
{{- fail (printf "worker.pools: the pools %s and %s both take \"*\" (every kind no other pool names); only one may" $rest $pool.name) }}
{{- end }}
{{- $rest = $pool.name }}
{{- else if hasKey $poolOf $kind }}
{{- fail (printf "worker.pools: the kind %s is in two pools, %s and %s; each kind goes to exactly one" $kind (get $poolOf $kind) $pool.name) }}
{{- else }}
{{- $_ := set $poolOf $kind $pool.name }}
{{- end }}
{{- end }}
{{- end }}
{{- if not $rest }}
{{- range $kind := include "file-processor.fileKinds" . | splitList " " }}
{{- if not (hasKey $poolOf $kind) }}
{{- fail (printf "worker.pools: no pool takes the kind %s; add it to a pool's kinds, or give one pool kinds [\"*\"]" $kind) }}
{{- end }}
{{- end }}
{{- end }}
{{- end }}

{{/* The worker Deployments to render, as a YAML list: each with its name, queue and pool label (none for the
single worker of an empty worker.pools), and the worker's values with the pool's own over them. */}}
{{- define "file-processor.workerPools" -}}
{{- $worker := .Values.worker }}
{{- $pools := list }}
{{- if not $worker.pools }}
{{- $pools = list (dict
  "name" ""
  "fullname" (include "file-processor.objectName" (list . "worker"))
  "queue" (include "file-processor.setting" (.Values.config.QUEUE_NAME | default "files"))
  "image" "worker"
  "replicas" $worker.replicas
  "resources" $worker.resources
  "keda" $worker.autoscaling.keda
  "hpa" $worker.autoscaling.hpa) }}
{{- else }}
{{- include "file-processor.checkWorkerPools" . }}
{{- range $pool := $worker.pools }}
{{- $keda := deepCopy $worker.autoscaling.keda }}
{{- with $pool.concurrency }}{{ $_ := set $keda "jobsPerReplica" . }}{{ end }}
{{- range $key, $value := dig "autoscaling" "keda" dict $pool }}{{ $_ := set $keda $key $value }}{{ end }}
{{- $hpa := deepCopy $worker.autoscaling.hpa }}
{{- range $key, $value := dig "autoscaling" "hpa" dict $pool }}{{ $_ := set $hpa $key $value }}{{ end }}
{{- $pools = append $pools (dict
  "name" $pool.name
  "fullname" (include "file-processor.objectName" (list $ (printf "worker-%s" $pool.name)))
  "queue" $pool.name
  "concurrency" $pool.concurrency
  "image" ($pool.image | default "worker")
  "replicas" (ternary $pool.replicas $worker.replicas (hasKey $pool "replicas"))
  "resources" ($pool.resources | default $worker.resources)
  "keda" $keda
  "hpa" $hpa) }}
{{- end }}
{{- end }}
{{- toYaml $pools }}
{{- end }}

{{/* QUEUE_ROUTES from worker.pools, in their order with the "*" rule last: image,pdf=heavy;*=light. A pool
without kinds only drains its queue: no kind is routed to it. */}}
{{- define "file-processor.queueRoutes" -}}
{{- $rules := list }}
{{- $rest := list }}
{{- range .Values.worker.pools }}
{{- if has "*" .kinds }}
{{- $rest = list (printf "*=%s" .name) }}
{{- else if .kinds }}
{{- $rules = append $rules (printf "%s=%s" (join "," .kinds) .name) }}
{{- end }}
{{- end }}
{{- join ";" (concat $rules $rest) }}
{{- end }}

{{/* QUEUE_ROUTES for every API and worker pod, with worker.pools; nothing without (one queue for every kind). */}}
{{- define "file-processor.queueRoutesEnv" -}}
{{- if .Values.worker.pools }}
- name: QUEUE_ROUTES
  value: {{ include "file-processor.queueRoutes" . | quote }}
{{- end }}
{{- end }}

{{/* SCAN_CLAMD: the address of the chart's clamd (scanning.clamav.enabled) or of scanning.clamd.address; empty while
scanning is off. Stops the chart when both are set. */}}
{{- define "file-processor.scanClamd" -}}
{{- $scanning := .Values.scanning }}
{{- if and $scanning.clamav.enabled $scanning.clamd.address }}
{{- fail "Set scanning.clamav.enabled (the chart deploys clamd) or scanning.clamd.address (an existing clamd), not both." }}
{{- else if $scanning.clamav.enabled }}
{{- printf "tcp://%s:%d" (include "file-processor.objectName" (list . "clamav")) (include "file-processor.clamdPort" . | int) }}
{{- else }}
{{- $scanning.clamd.address }}
{{- end }}
{{- end }}

{{/* The port clamd listens on: the chart's own clamd's, or that of scanning.clamd.address. */}}
{{- define "file-processor.clamdPort" -}}
{{- if .Values.scanning.clamav.enabled }}3310{{ else }}{{ regexFind "[0-9]+$" .Values.scanning.clamd.address }}{{ end }}
{{- end }}

{{/* SCAN_* for the API and every worker while scanning is on (the API only answers 409 scan_pending meanwhile;
the workers scan); nothing while it is off. */}}
{{- define "file-processor.scanEnv" -}}
{{- with include "file-processor.scanClamd" . }}
- name: SCAN_CLAMD
  value: {{ . | quote }}
- name: SCAN_UNSCANNABLE
  value: {{ $.Values.scanning.unscannable | quote }}
- name: SCAN_TIMEOUT_MS
  value: {{ include "file-processor.setting" $.Values.scanning.timeoutMs | quote }}
{{- end }}
{{- end }}

{{/* A clamd.conf or freshclam.conf from a dict of directives, one line each in name order: booleans as yes/no,
numbers as written, a list as the directive repeated (DatabaseMirror, TCPAddr...). */}}
{{- define "file-processor.clamavConfig" -}}
{{- range $name, $value := . }}
{{- range (ternary $value (list $value) (kindIs "slice" $value)) }}
{{ $name }} {{ if kindIs "bool" . }}{{ ternary "yes" "no" . }}{{ else }}{{ include "file-processor.setting" . }}{{ end }}
{{- end }}
{{- end }}
{{- end }}

{{/* Name prefix of every object: <release>-lockstep (or nameOverride). */}}
{{- define "lockstep.fullname" -}}
{{- $name := default "lockstep" .Values.nameOverride -}}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "lockstep.labels" -}}
app.kubernetes.io/name: lockstep
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{/* Selector labels of one component: pass (dict "root" $ "component" "hub"). */}}
{{- define "lockstep.selector" -}}
app.kubernetes.io/name: lockstep
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{/* Labels every lockstep user pod carries (spawner.launch.spec.spec_labels; label-safe). */}}
{{- define "lockstep.userPodSelector" -}}
org.lockstep.managed: "true"
{{- end -}}

{{- define "lockstep.hubImage" -}}
{{- $digest := required "hub.image.digest is required: the hub runs by digest (sha256:<64 hex>); build it with images/hub (docs/kubernetes.md)" .Values.hub.image.digest -}}
{{- printf "%s@%s" .Values.hub.image.repository $digest -}}
{{- end -}}

{{- /* The client secret of the OAuth login: the site's Secret, else the chart's. */}}
{{- define "lockstep.oauthSecretRef" -}}
{{- $o := .Values.hub.auth.oauth -}}
{{- range $key := list "clientId" "authorizeUrl" "tokenUrl" "userdataUrl" "callbackUrl" -}}
{{- if not (get $o $key) -}}
{{- fail (printf "hub.auth.oauth.%s is required with hub.auth.type oauth (each person logs in with their own identity; see docs/kubernetes.md, Login), or set hub.auth.type custom and name your authenticator in hub.config" $key) -}}
{{- end -}}
{{- end -}}
{{- if $o.existingSecret.name -}}
{name: {{ $o.existingSecret.name }}, key: {{ $o.existingSecret.key }}}
{{- else if $o.clientSecret -}}
{name: {{ include "lockstep.fullname" . }}-secret, key: oauth-client-secret}
{{- else -}}
{{- fail "hub.auth.oauth needs the client secret: hub.auth.oauth.existingSecret.name (a Secret you made: kubectl create secret generic lockstep-oauth --from-literal=client-secret=...) or hub.auth.oauth.clientSecret" -}}
{{- end -}}
{{- end -}}

{{- define "lockstep.proxyImage" -}}
{{- if .Values.proxy.image.digest -}}
{{- printf "%s@%s" .Values.proxy.image.repository .Values.proxy.image.digest -}}
{{- else -}}
{{- printf "%s:%s" .Values.proxy.image.repository .Values.proxy.image.tag -}}
{{- end -}}
{{- end -}}

{{/* Every image pull secret name, as a YAML list of {name: ...}. */}}
{{- define "lockstep.pullSecrets" -}}
{{- $names := list -}}
{{- range .Values.imagePullSecrets }}{{ $names = append $names . }}{{ end -}}
{{- if .Values.registryCredentials.create }}{{ $names = append $names (printf "%s-registry" (include "lockstep.fullname" .)) }}{{ end -}}
{{- range $names }}
- name: {{ . }}
{{- end -}}
{{- end -}}

{{/* Projects as a JSON map name -> project.yaml text: chart files, then the projects value. */}}
{{- define "lockstep.projects" -}}
{{- $out := dict -}}
{{- range $path, $_ := .Files.Glob "projects/*/project.yaml" -}}
{{- $name := base (dir $path) -}}
{{- $_ := set $out $name ($.Files.Get $path) -}}
{{- end -}}
{{- range $name, $text := .Values.projects -}}
{{- $_ := set $out $name $text -}}
{{- end -}}
{{- toJson $out -}}
{{- end -}}

{{/* One generated secret value, kept across upgrades: (dict "root" $ "key" "x" "gen" value). */}}
{{- define "lockstep.keepSecret" -}}
{{- $existing := lookup "v1" "Secret" .root.Release.Namespace (printf "%s-secret" (include "lockstep.fullname" .root)) -}}
{{- if and $existing (hasKey ($existing.data | default dict) .key) -}}
{{- index $existing.data .key -}}
{{- else -}}
{{- .gen | b64enc -}}
{{- end -}}
{{- end -}}

{{/* Egress rules to DNS on port 53 (UDP+TCP), as Zero to JupyterHub opens it: any
namespace's pods (kube-dns/CoreDNS), NodeLocal DNSCache's link-local address, the cloud
metadata server's resolver (GKE and others answer DNS at 169.254.169.254:53; only port
53 is opened there) and the private ranges (managed DNS outside the cluster). */}}
{{- define "lockstep.dnsEgress" -}}
{{- $dns := .Values.dnsEgress -}}
{{- $peers := list -}}
{{- if $dns.clusterDNS }}{{ $peers = append $peers (dict "namespaceSelector" dict) }}{{ end -}}
{{- range $dns.extraCidrs }}{{ $peers = append $peers (dict "ipBlock" (dict "cidr" .)) }}{{ end -}}
{{- if $peers }}
- to:
    {{- toYaml $peers | nindent 4 }}
  ports:
    - {protocol: UDP, port: 53}
    - {protocol: TCP, port: 53}
{{- end }}
{{- end -}}

{{- /* "true" when the IPv4 CIDR "a.b.c.d/n" shares an address with 169.254.0.0/16: the
first min(n, 16) bits of both networks are equal (whole-number arithmetic; sprig has no CIDR
functions). The schema already limits entries to a.b.c.d/n. */}}
{{- define "lockstep.overlapsLinkLocal" -}}
{{- $parts := splitList "/" . -}}
{{- $o := splitList "." (first $parts) -}}
{{- $ip := add (mul (atoi (index $o 0)) 16777216) (mul (atoi (index $o 1)) 65536) (mul (atoi (index $o 2)) 256) (atoi (index $o 3)) -}}
{{- $bits := min (atoi (last $parts)) 16 -}}
{{- $step := 1 -}}
{{- range until (sub 32 $bits | int) }}{{ $step = mul $step 2 }}{{ end -}}
{{- if eq (div $ip $step) (div 2851995648 $step) }}true{{ end -}}
{{- end -}}

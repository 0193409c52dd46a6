#!/bin/sh
# make demo: the webhook, then the janitor, at work.  Makes a CA and serving certificate in a
# temporary directory, starts bin/pipewarden-webhook, sends it the pod a KEDA
# ScaledJob creates for an Azure Pipelines agent, shows what it injected as
# a before/after diff, then a denial and the metrics, and stops it.
set -eu
cd "$(dirname "$0")/../.."
PY=/usr/bin/python3
tmp=$(mktemp -d)
pid=""
cleanup() {
	[ -n "$pid" ] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null
	rm -rf "$tmp"
}
trap cleanup EXIT INT TERM

port=$($PY -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
mport=$($PY -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')

step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

step "1. A CA and an ECDSA P-256 serving certificate (certs/make-certs.sh)"
sh certs/make-certs.sh "$tmp/certs" >/dev/null
openssl x509 -in "$tmp/certs/tls.crt" -noout -subject -ext subjectAltName | sed 's/^/   /'

step "2. Start pipewarden-webhook with the example config (tests/config.json)"
bin/pipewarden-webhook --config tests/config.json --tls-cert "$tmp/certs/tls.crt" \
    --tls-key "$tmp/certs/tls.key" --port "$port" --metrics-port "$mport" \
    --address 127.0.0.1 2>"$tmp/webhook.log" &
pid=$!
i=0
until curl -sf --cacert "$tmp/certs/ca.crt" "https://localhost:$port/readyz" >/dev/null; do
	i=$((i + 1)); [ $i -lt 100 ] || { cat "$tmp/webhook.log"; exit 1; }; sleep 0.1
done
echo "   ready on https://localhost:$port (metrics on http://127.0.0.1:$mport/metrics)"

step "3. kube-apiserver sends the pod of a KEDA ScaledJob (annotation pipewarden.io/inject: \"true\")"
$PY -c 'import json; print(json.dumps(json.load(open("tests/cases/job-pod-keda.json"))["review"]))' > "$tmp/review.json"
curl -sS --cacert "$tmp/certs/ca.crt" -H 'Content-Type: application/json' \
    --data-binary @"$tmp/review.json" "https://localhost:$port/mutate?timeout=10s" > "$tmp/answer.json"
$PY - "$tmp" <<'PYEOF'
import base64, json, sys, jsonpatch, yaml
d = sys.argv[1]
review = json.load(open(d + "/review.json"))
resp = json.load(open(d + "/answer.json"))["response"]
ops = json.loads(base64.b64decode(resp["patch"]))
print("   allowed=%s, a JSON Patch of %d add operations" % (resp["allowed"], len(ops)))
pod = review["request"]["object"]
after = jsonpatch.apply_patch(pod, ops)
def slim(p):
    p = json.loads(json.dumps(p))
    p["metadata"].pop("managedFields", None)
    return p
for name, p in (("before", pod), ("after", after)):
    with open(d + "/" + name + ".yaml", "w") as f:
        yaml.safe_dump(slim(p), f, sort_keys=False, default_flow_style=False)
PYEOF
step "4. What was injected (diff of the pod before and after the patch)"
diff -u --label "pod as sent" --label "pod as admitted" "$tmp/before.yaml" "$tmp/after.yaml" | sed 's/^/   /' || true

step "5. A pod with a plaintext PAT in AZP_TOKEN is denied"
$PY - "$tmp" <<'PYEOF'
import json, sys
d = sys.argv[1]
r = json.load(open(d + "/review.json"))
r["request"]["uid"] = "d3m0d3m0-0000-4000-8000-000000000002"
r["request"]["object"]["spec"]["containers"][0]["env"] = [
    {"name": "AZP_TOKEN", "value": "not-a-real-pat-but-it-looks-like-one"}]
json.dump(r, open(d + "/denied.json", "w"))
PYEOF
curl -sS --cacert "$tmp/certs/ca.crt" -H 'Content-Type: application/json' \
    --data-binary @"$tmp/denied.json" "https://localhost:$port/mutate?timeout=10s" |
    $PY -c 'import json,sys; r=json.load(sys.stdin)["response"]; print("   allowed=%s code=%s\n   message: %s" % (r["allowed"], r["status"]["code"], r["status"]["message"]))'
echo "   (kubectl shows it as: admission webhook \"inject.pipewarden.io\" denied the request: ...)"

step "6. A malformed request gets a 400, and the server keeps serving"
printf '{"apiVersion":"admission.k8s.io/v1beta1"}' | curl -sS --cacert "$tmp/certs/ca.crt" \
    -w '   -> HTTP %{http_code}\n' --data-binary @- "https://localhost:$port/mutate" | sed 's/^{/   {/'

step "7. Metrics (http://127.0.0.1:$mport/metrics)"
curl -sS "http://127.0.0.1:$mport/metrics" | grep -E '^pipewarden_' | grep -v '_bucket' | sed 's/^/   /'

step "8. The log: one JSON object per line on stderr"
sed 's/^/   /' "$tmp/webhook.log" | cut -c1-220

step "9. SIGTERM: /readyz fails at once, connections are still served for --shutdown-delay (5 s), then exit 0"
kill -TERM "$pid"
sleep 0.3
printf '   /readyz right after SIGTERM: '
curl -s --cacert "$tmp/certs/ca.crt" "https://localhost:$port/readyz"
wait "$pid" && echo "   exited 0"
pid=""

/usr/bin/python3 tests/demo/demo_janitor.py

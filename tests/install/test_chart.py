#!/usr/bin/python3
"""The Helm chart (charts/pipewarden), checked with the pinned Helm.

- `helm lint --strict` with the defaults and with every documented values
  combination;
- the chart and the kustomize base render the same objects for the same
  settings (defaults = overlays/self-signed; certManager = overlays/cert-manager;
  metrics.serviceMonitor, validatingPolicy, janitor.pat, networkPolicy = the
  components of the same names; prometheusRule = manifests/monitoring), so the
  two install paths never drift;
- values.schema.json rejects what `--check-config` rejects, case by case, and
  accepts what it accepts; other bad values fail with a message naming them;
- the self-signed certificate: a serving pair for the Service's names, signed
  by the caBundle the webhook configuration trusts;
- every rendering validates against the Kubernetes schema (k8s-validate).

What kube-apiserver makes of the same renderings (server-side dry run, a
real install, upgrade and uninstall) is in tests/cluster/test_cluster.py.

usage: test_chart.py --helm BIN --janitor BIN [--results FILE]
"""
import argparse
import base64
import copy
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile

import yaml

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "support"))
import lib  # noqa: E402

CHART = os.path.join(lib.ROOT, "charts", "pipewarden")
NS = "pipewarden-system"
CLUSTER_KINDS = {"MutatingWebhookConfiguration", "ValidatingAdmissionPolicy", "ValidatingAdmissionPolicyBinding",
                 "ClusterRole", "ClusterRoleBinding", "PriorityClass", "Namespace"}
HELM_ONLY_LABELS = ("app.kubernetes.io/managed-by", "app.kubernetes.io/instance",
                    "app.kubernetes.io/version", "helm.sh/chart")

# Each values combination the README documents, and the kustomize path that
# must render the same objects (None: the chart alone).
COMBINATIONS = [
    ("defaults", [], "overlays/self-signed", []),
    ("certManager", ["certManager.enabled=true"], "overlays/cert-manager", []),
    ("serviceMonitor", ["metrics.serviceMonitor.enabled=true"], "overlays/self-signed", ["servicemonitor"]),
    ("validatingPolicy + Ignore", ["validatingPolicy.enabled=true", "webhook.failurePolicy=Ignore"], None, []),
    ("validatingPolicy", ["validatingPolicy.enabled=true"], "overlays/self-signed", ["validating-policy"]),
    ("janitor PAT", ["janitor.pat.enabled=true"], "overlays/self-signed", ["janitor-pat"]),
    ("networkPolicy", ["networkPolicy.enabled=true"], "overlays/self-signed", ["networkpolicy"]),
    ("prometheusRule", ["prometheusRule.enabled=true"], None, []),
    ("grafanaDashboard", ["grafanaDashboard.enabled=true"], None, []),
    ("everything", ["certManager.enabled=true", "metrics.serviceMonitor.enabled=true",
                    "validatingPolicy.enabled=true", "janitor.pat.enabled=true", "networkPolicy.enabled=true",
                    "prometheusRule.enabled=true"], "overlays/cert-manager",
     ["servicemonitor", "validating-policy", "janitor-pat", "networkpolicy"]),
    ("no janitor", ["janitor.enabled=false"], None, []),
    ("hostNetwork, own image", ["webhook.hostNetwork=true", "webhook.port=10250",
                                "image.registry=registry.example.com", "image.repository=platform/pipewarden",
                                "image.tag=0.1.0-rc1", "imagePullSecrets[0].name=regcred"], None, []),
    ("existing TLS Secret", ["webhook.tls.existingSecret=my-tls", "webhook.tls.caBundle=Y2E="], None, []),
    ("janitor: node network, internal CA, more env",
     ["janitor.hostNetwork=true", "janitor.adoCA.configMap=corp-ca", "janitor.extraEnv[0].name=NO_PROXY",
      "janitor.extraEnv[0].value=10.0.0.1"], None, []),
]

# Config values that --check-config rejects: the schema must reject each.
BAD_CONFIGS = [
    ("organizationUrl over http", {"organizationUrl": "http://dev.azure.com/contoso"}),
    ("no organizationUrl", {"organizationUrl": None}),
    ("an unknown top-level key", {"poolz": ["x"]}),
    ("an unknown janitor key", {"janitor": {"intervalSecond": 5}}),
    ("an unknown identity mode", {"identity": {"mode": "kerberos"}}),
    ("a client id that is not a GUID", {"identity": {"clientId": "my-app"}}),
    ("authorityHost over http", {"identity": {"authorityHost": "http://login.example.com/"}}),
    ("identity pat without patSecret", {"identity": {"mode": "pat", "patSecret": ""}}),
    ("a toleration operator", {"tolerations": [{"key": "a", "operator": "In", "value": "b"}]}),
    ("a toleration effect", {"tolerations": [{"key": "a", "operator": "Equal", "value": "b", "effect": "Never"}]}),
    ("intervalSeconds 0", {"janitor": {"intervalSeconds": 0}}),
    ("maxDeletionsPerCycle negative", {"janitor": {"maxDeletionsPerCycle": -1}}),
    ("intervalSeconds as a string", {"janitor": {"intervalSeconds": "60"}}),
    ("a leaseName that is no Lease name", {"janitor": {"leaseName": "Pipewarden_Janitor"}}),
    ("an apiVersion that is no api-version", {"janitor": {"apiVersion": "latest"}}),
    ("a quantity that is no quantity", {"profiles": {"medium": {"requests": {"cpu": "one"}}}}),
    ("no profiles", {"profiles": None, "defaultProfile": None}),
    ("an empty defaultPool", {"defaultPool": ""}),
    ("a janitor client id that is not a GUID", {"janitor": {"identity": {"clientId": "x"}}}),
]
GOOD_CONFIGS = [
    ("the defaults", {}),
    ("a PAT identity", {"identity": {"mode": "pat", "patSecret": "azp-pat"}}),
    ("Azure DevOps Server 2022 (api-version 7.0)", {"janitor": {"apiVersion": "7.0"}}),
    ("a GPU profile", {"profiles": {"gpu": {"requests": {"cpu": "2", "nvidia.com/gpu": "1"},
                                            "limits": {"nvidia.com/gpu": "1"}}},
                     "defaultProfile": "medium"}),
    ("the janitor's own identity", {"janitor": {"identity": {"clientId": "11111111-2222-3333-4444-555555555555",
                                                             "tenantId": "00000000-0000-0000-0000-000000000000"}}}),
]


class Helm:
    def __init__(self, binary, tmp):
        self.bin = binary
        self.env = dict(os.environ, HELM_CACHE_HOME=os.path.join(tmp, "helm-cache"),
                        HELM_CONFIG_HOME=os.path.join(tmp, "helm-config"),
                        HELM_DATA_HOME=os.path.join(tmp, "helm-data"))
        self.tmp = tmp

    def run(self, *args, values=None):
        cmd = [self.bin] + list(args)
        if values is not None:
            path = os.path.join(self.tmp, "values-%d.yaml" % len(os.listdir(self.tmp)))
            with open(path, "w") as f:
                yaml.safe_dump(values, f)
            cmd += ["-f", path]
        return subprocess.run(cmd, capture_output=True, text=True, env=self.env)

    def template(self, sets=(), values=None):
        args = ["template", "pipewarden", CHART, "--namespace", NS]
        for s in sets:
            args += ["--set", s]
        return self.run(*args, values=values)


def objects(text):
    return [d for d in yaml.safe_load_all(text) if d]


def normalize(objs):
    """The objects as (kind, namespace, name) -> object, without what only
    one of the two tools adds: Helm's own labels, kustomize's ConfigMap hash
    suffix, and the certificate material (made anew by each)."""
    out = {}
    for o in copy.deepcopy(objs):
        md = o["metadata"]
        for k in HELM_ONLY_LABELS:
            (md.get("labels") or {}).pop(k, None)
        text = re.sub(r"pipewarden-config-[a-z0-9]{10}\b", "pipewarden-config", json.dumps(o))
        o = json.loads(text)
        md = o["metadata"]
        if o["kind"] == "ConfigMap" and md["name"] == "pipewarden-config":
            o["data"]["config.json"] = json.loads(o["data"]["config.json"])
        if o["kind"] == "ConfigMap" and md["name"] == "pipewarden-dashboard":
            o["data"]["pipewarden.json"] = json.loads(o["data"]["pipewarden.json"])
        if o["kind"] == "Secret" and md["name"] == "pipewarden-webhook-tls":
            o.pop("data", None)
        if o["kind"] == "MutatingWebhookConfiguration":
            for w in o["webhooks"]:
                w["clientConfig"].pop("caBundle", None)
        if o["kind"] in CLUSTER_KINDS:
            # (kustomize 5.5 writes its namespace on cluster-scoped policies;
            # kube-apiserver ignores it)
            md.pop("namespace", None)
        out[(o["kind"], md.get("namespace", ""), md["name"])] = o
    return out


def first_difference(a, b, path=""):
    if type(a) is not type(b):
        return "%s: %r != %r" % (path or "/", a, b)
    if isinstance(a, dict):
        for k in sorted(set(a) | set(b)):
            if k not in a or k not in b:
                return "%s/%s: only in %s" % (path, k, "the chart" if k in a else "kustomize")
            d = first_difference(a[k], b[k], path + "/" + k)
            if d:
                return d
        return None
    if isinstance(a, list):
        if len(a) != len(b):
            return "%s: %d items != %d" % (path, len(a), len(b))
        for i, (x, y) in enumerate(zip(a, b)):
            d = first_difference(x, y, "%s/%d" % (path, i))
            if d:
                return d
        return None
    return None if a == b else "%s: %r != %r" % (path, a, b)


def kustomize(tree, overlay, components):
    d = os.path.join(tree, "t-" + "-".join([overlay.replace("/", "_")] + components))
    if not os.path.isdir(d):
        os.makedirs(d)
        with open(os.path.join(d, "kustomization.yaml"), "w") as f:
            yaml.safe_dump({"resources": ["../" + overlay],
                            "components": ["../components/" + c for c in components]}, f)
    p = subprocess.run(["kubectl", "kustomize", d], capture_output=True, text=True)
    if p.returncode != 0:
        raise RuntimeError(p.stderr)
    return objects(p.stdout)


def test_lint(res, helm):
    for name, sets, _, _ in COMBINATIONS:
        args = ["lint", "--strict", CHART, "--namespace", NS]
        for s in sets:
            args += ["--set", s]
        p = helm.run(*args)
        res.check(p.returncode == 0, "helm lint --strict: " + name, (p.stdout + p.stderr)[-800:])


def test_same_as_kustomize(res, helm, tmp):
    tree = os.path.join(tmp, "manifests")
    shutil.copytree(os.path.join(lib.ROOT, "manifests"), tree)
    lib.make_certs(os.path.join(tree, "overlays", "self-signed", "certs"))
    with open(os.path.join(lib.ROOT, "manifests", "monitoring", "prometheusrule.yaml")) as f:
        rule = objects(f.read())
    for name, sets, overlay, components in COMBINATIONS:
        p = helm.template(sets)
        if not res.check(p.returncode == 0, "helm template: " + name, p.stderr[-600:]):
            continue
        lib.k8s_validate(res, "chart, " + name, p.stdout)
        chart = normalize(objects(p.stdout))
        if name == "grafanaDashboard":
            mon = normalize(kustomize(tree, "monitoring", []))
            want = [v for k, v in mon.items() if k[0] == "ConfigMap"]
            got = [v for k, v in chart.items() if k[0] == "ConfigMap" and k[2] == "pipewarden-dashboard"]
            res.check(got == want and got[0]["data"]["pipewarden.json"]["uid"] == "pipewarden",
                      "the chart's dashboard ConfigMap is manifests/monitoring's",
                      first_difference(got, want) or "")
            continue
        if name == "prometheusRule":
            ours = normalize(rule)
            got = {k: v for k, v in chart.items() if k[0] == "PrometheusRule"}
            res.check(list(got.values()) == list(ours.values()),
                      "the chart's PrometheusRule is manifests/monitoring/prometheusrule.yaml",
                      first_difference(list(got.values()), list(ours.values())) or "")
            continue
        if overlay is None:
            continue
        kust = normalize(kustomize(tree, overlay, components))
        # The one object only kustomize makes: Helm users create the
        # namespace (helm install --create-namespace) and label it.
        kust.pop(("Namespace", "", NS), None)
        if "prometheusRule.enabled=true" in sets:
            kust.update(normalize(rule))
        only_chart = sorted(set(chart) - set(kust))
        only_kust = sorted(set(kust) - set(chart))
        res.check(not only_chart and not only_kust, "%s: the chart and kustomize make the same objects" % name,
                  "only the chart: %s; only kustomize: %s" % (only_chart, only_kust))
        diffs = ["%s/%s: %s" % (k[0], k[2], first_difference(chart[k], kust[k]))
                 for k in sorted(set(chart) & set(kust)) if chart[k] != kust[k]]
        res.check(not diffs, "%s: every object the same (%d compared)" % (name, len(set(chart) & set(kust))),
                  "; ".join(diffs[:3]))


def test_values(res, helm, janitor, tmp):
    """values.schema.json against --check-config, case by case."""
    with open(os.path.join(CHART, "values.yaml")) as f:
        defaults = yaml.safe_load(f)["config"]
    with open(os.path.join(lib.ROOT, "manifests", "base", "config.json")) as f:
        res.check(defaults == json.load(f), "the chart's default config is manifests/base/config.json")

    def merged(over):
        """The config as the chart's values give it (a null deletes a default
        key, as Helm merges values) and as the programs then read it."""
        def drop_nulls(v):
            return {k: drop_nulls(x) for k, x in v.items() if x is not None} if isinstance(v, dict) else v
        return lib.deep_merge(copy.deepcopy(defaults), over), drop_nulls(lib.deep_merge(copy.deepcopy(defaults), over))

    def check_config(cfg):
        path = os.path.join(tmp, "check.json")
        with open(path, "w") as f:
            json.dump(cfg, f)
        return subprocess.run([janitor, "--check-config", "--config", path], capture_output=True, text=True)

    for name, over in BAD_CONFIGS:
        values, cfg = merged(over)
        c = check_config(cfg)
        h = helm.template(values={"config": values})
        res.check(c.returncode != 0, "--check-config rejects %s" % name, c.stdout + c.stderr)
        res.check(h.returncode != 0 and "values don't meet the specifications of the schema" in h.stderr,
                  "the chart's schema rejects %s" % name, h.stderr[-400:])
    for name, over in GOOD_CONFIGS:
        values, cfg = merged(over)
        c = check_config(cfg)
        h = helm.template(values={"config": values})
        res.check(c.returncode == 0 and h.returncode == 0, "both accept %s" % name,
                  (c.stdout + c.stderr + h.stderr)[-400:])
        if h.returncode == 0:
            cm = [o for o in objects(h.stdout) if o["kind"] == "ConfigMap"][0]
            res.check(json.loads(cm["data"]["config.json"]) == cfg,
                      "the ConfigMap holds the config as given: %s" % name)
    for name, sets, words in [
            ("a misspelt top-level value", ["webhok.replicas=3"], "webhok"),
            ("failurePolicy Maybe", ["webhook.failurePolicy=Maybe"], "failurePolicy"),
            ("timeoutSeconds over 30", ["webhook.timeoutSeconds=31"], "timeoutSeconds"),
            ("an image digest that is no digest", ["image.digest=latest"], "digest"),
            ("an adoCA ConfigMap name that is no name", ["janitor.adoCA.configMap=Corp_CA"], "configMap"),
            ("an extraEnv entry without a name", ["janitor.extraEnv[0].value=x"], "name")]:
        p = helm.template(sets)
        res.check(p.returncode != 0 and words in p.stderr, "the schema rejects %s, naming it" % name,
                  p.stderr[-300:])
    p = helm.template(["webhook.tls.existingSecret=mine"])
    res.check(p.returncode != 0 and "webhook.tls.caBundle" in p.stderr,
              "an existing TLS Secret without its caBundle: a clear error", p.stderr[-300:])


def test_janitor_network_and_ca(res, helm):
    """janitor.adoCA, .hostNetwork and .extraEnv land where the janitor reads
    them (the real node suite runs the chart with all three)."""
    p = helm.template(["janitor.hostNetwork=true", "janitor.adoCA.configMap=corp-ca", "janitor.adoCA.key=root.pem",
                       "janitor.extraEnv[0].name=KUBERNETES_SERVICE_HOST", "janitor.extraEnv[0].value=10.0.0.1"])
    ds = [o for o in objects(p.stdout) if o["kind"] == "DaemonSet"][0]["spec"]["template"]["spec"]
    c = ds["containers"][0]
    mount = [m for m in c["volumeMounts"] if m["name"] == "ado-ca"]
    vol = [v for v in ds["volumes"] if v["name"] == "ado-ca"]
    res.check("--ado-ca=/etc/pipewarden/ado-ca/root.pem" in c["args"] and
              mount == [{"name": "ado-ca", "mountPath": "/etc/pipewarden/ado-ca", "readOnly": True}] and
              vol == [{"name": "ado-ca", "configMap": {"name": "corp-ca",
                                                       "items": [{"key": "root.pem", "path": "root.pem"}]}}],
              "janitor.adoCA: the ConfigMap's key mounted and passed as --ado-ca", json.dumps([c["args"], vol]))
    res.check(ds.get("hostNetwork") is True and ds.get("dnsPolicy") == "ClusterFirstWithHostNet" and
              {"name": "KUBERNETES_SERVICE_HOST", "value": "10.0.0.1"} in c["env"],
              "janitor.hostNetwork and extraEnv: the node's network, the variable after the chart's own")
    d = [o for o in objects(helm.template().stdout) if o["kind"] == "DaemonSet"][0]["spec"]["template"]["spec"]
    res.check("hostNetwork" not in d and not [a for a in d["containers"][0]["args"] if "ado-ca" in a] and
              "ado-ca" not in {v["name"] for v in d["volumes"]},
              "by default none of the three: the pod network and the image's trust store")


def test_self_signed(res, helm, tmp):
    p = helm.template()
    objs = objects(p.stdout)
    sec = [o for o in objs if o["kind"] == "Secret" and o["metadata"]["name"] == "pipewarden-webhook-tls"][0]
    mwc = [o for o in objs if o["kind"] == "MutatingWebhookConfiguration"][0]
    d = os.path.join(tmp, "selfsigned")
    os.makedirs(d)
    for k in ("ca.crt", "tls.crt", "tls.key"):
        with open(os.path.join(d, k), "wb") as f:
            f.write(base64.b64decode(sec["data"][k]))
    with open(os.path.join(d, "bundle.crt"), "wb") as f:
        f.write(base64.b64decode(mwc["webhooks"][0]["clientConfig"]["caBundle"]))
    v = subprocess.run(["openssl", "verify", "-CAfile", os.path.join(d, "bundle.crt"),
                        "-purpose", "sslserver", os.path.join(d, "tls.crt")], capture_output=True, text=True)
    res.check(v.returncode == 0, "self-signed: the serving certificate is signed by the caBundle the "
              "webhook configuration trusts", v.stdout + v.stderr)
    t = subprocess.run(["openssl", "x509", "-noout", "-text", "-in", os.path.join(d, "tls.crt")],
                       capture_output=True, text=True).stdout
    res.check("DNS:pipewarden-webhook.pipewarden-system.svc" in t and "id-ecPublicKey" in t and "prime256v1" in t,
              "self-signed: an ECDSA P-256 certificate for the Service's name", t[:600])
    m = subprocess.run(["openssl", "pkey", "-in", os.path.join(d, "tls.key"), "-pubout"],
                       capture_output=True, text=True).stdout
    c = subprocess.run(["openssl", "x509", "-noout", "-pubkey", "-in", os.path.join(d, "tls.crt")],
                       capture_output=True, text=True).stdout
    res.check(m and m == c, "self-signed: the key matches the certificate")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--helm", required=True)
    ap.add_argument("--janitor", required=True)
    ap.add_argument("--results")
    ap.add_argument("--suite", default="helm chart")
    args = ap.parse_args()
    res = lib.Results(args.suite, args.results)
    tmp = tempfile.mkdtemp(prefix="pipewarden-chart-")
    try:
        helm = Helm(args.helm, os.path.join(tmp, "helm"))
        os.makedirs(helm.tmp)
        v = helm.run("version", "--short")
        print("helm " + v.stdout.strip(), flush=True)
        test_lint(res, helm)
        test_same_as_kustomize(res, helm, tmp)
        test_values(res, helm, args.janitor, tmp)
        test_janitor_network_and_ca(res, helm)
        test_self_signed(res, helm, tmp)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return res.done()


if __name__ == "__main__":
    sys.exit(main())

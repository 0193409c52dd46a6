#!/usr/bin/python3
"""The install path, checked with real tools.

Every overlay and component renders with `kubectl kustomize` and validates
against the Kubernetes 1.35 schema (../shared/tools/k8s-validate); the
janitor's RBAC grants exactly the calls the janitor makes (recorded from a
real cycle against the Kubernetes simulator); the webhook registration and
workloads carry DESIGN's selectors and the security settings; the example
agent pods, sent through the real webhook, come out complete and valid; the
alerts pass `promtool check rules` and `promtool test rules`.

usage: test_manifests.py --webhook BIN --janitor BIN [--results FILE]
"""
import argparse
import base64
import json
import os
import shutil
import subprocess
import sys
import tempfile

import yaml

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "support"))
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "e2e"))
import lib  # noqa: E402
import sim  # noqa: E402
import test_janitor  # noqa: E402
import test_webhook  # noqa: E402

M = os.path.join(lib.ROOT, "manifests")


def render(path):
    p = subprocess.run(["kubectl", "kustomize", path], capture_output=True, text=True)
    if p.returncode != 0:
        raise RuntimeError("kubectl kustomize %s: %s" % (path, p.stderr))
    return p.stdout, [d for d in yaml.safe_load_all(p.stdout) if d]


def find(objs, kind, name=None):
    for o in objs:
        if o["kind"] == kind and (name is None or o["metadata"]["name"] == name):
            return o
    return None


def test_render(res, tmp):
    tree = os.path.join(tmp, "manifests")
    shutil.copytree(M, tree)
    lib.make_certs(os.path.join(tree, "overlays", "self-signed", "certs"))
    comp = os.path.join(tree, "all-components")
    os.makedirs(comp)
    with open(os.path.join(comp, "kustomization.yaml"), "w") as f:
        f.write("resources: [../base]\ncomponents: [../components/validating-policy, "
                "../components/servicemonitor, ../components/janitor-pat]\n")
    rendered = {}
    for name in ("base", "overlays/cert-manager", "overlays/self-signed", "all-components", "examples"):
        try:
            text, objs = render(os.path.join(tree, name))
            error = ""
        except RuntimeError as e:
            text, objs, error = "", [], str(e)
        if not res.check(error == "" and len(objs) > 0, "renders: " + name, error):
            continue
        lib.k8s_validate(res, name, text)
        rendered[name] = objs
    return rendered


def test_webhook_registration(res, r):
    base = r["base"]
    mwc = find(base, "MutatingWebhookConfiguration", "pipewarden")
    w = mwc["webhooks"][0]
    res.check(w["name"] == "inject.pipewarden.io", "webhook name")
    res.check(w["namespaceSelector"]["matchLabels"] == {"pipewarden.io/injection": "enabled"},
              "namespaceSelector: pipewarden.io/injection=enabled")
    excl = [e for e in w["namespaceSelector"]["matchExpressions"] if e["operator"] == "NotIn"
            and e["key"] == "kubernetes.io/metadata.name"]
    res.check(excl and {"pipewarden-system", "kube-system"} <= set(excl[0]["values"]),
              "pipewarden's own namespace and kube-system can never be blocked")
    res.check(w["rules"] == [{"apiGroups": [""], "apiVersions": ["v1"], "operations": ["CREATE"],
                              "resources": ["pods"], "scope": "Namespaced"}], "pods CREATE only")
    res.check(w["sideEffects"] == "None" and w["reinvocationPolicy"] == "IfNeeded" and
              w["failurePolicy"] == "Fail" and w["admissionReviewVersions"] == ["v1"],
              "sideEffects None, reinvocationPolicy IfNeeded, failurePolicy Fail, v1")
    res.check(1 <= w["timeoutSeconds"] < 10, "timeoutSeconds short (%s s)" % w["timeoutSeconds"])
    svc = find(base, "Service", "pipewarden-webhook")
    dep = find(base, "Deployment", "pipewarden-webhook")
    cc = w["clientConfig"]["service"]
    res.check(cc["name"] == svc["metadata"]["name"] and cc["namespace"] == "pipewarden-system" and
              cc["path"] == "/mutate" and cc["port"] == 443, "clientConfig points at the Service's /mutate")
    port = [p for p in svc["spec"]["ports"] if p["port"] == 443][0]
    cports = {p["name"]: p["containerPort"] for p in dep["spec"]["template"]["spec"]["containers"][0]["ports"]}
    res.check(cports.get(port["targetPort"]) == 8443, "Service 443 reaches the container's 8443")
    ss = r["overlays/self-signed"]
    ca = find(ss, "MutatingWebhookConfiguration")["webhooks"][0]["clientConfig"].get("caBundle", "")
    res.check(b"BEGIN CERTIFICATE" in base64.b64decode(ca), "self-signed overlay sets the caBundle")
    res.check(find(ss, "Secret", "pipewarden-webhook-tls")["type"] == "kubernetes.io/tls",
              "self-signed overlay ships the serving Secret")
    cm = find(r["overlays/cert-manager"], "MutatingWebhookConfiguration")
    res.check(cm["metadata"]["annotations"].get("cert-manager.io/inject-ca-from") ==
              "pipewarden-system/pipewarden-webhook", "cert-manager overlay injects the CA")
    cert = find(r["overlays/cert-manager"], "Certificate", "pipewarden-webhook")
    res.check(cert["spec"]["privateKey"] == {"algorithm": "ECDSA", "size": 256, "rotationPolicy": "Always"} and
              "pipewarden-webhook.pipewarden-system.svc" in cert["spec"]["dnsNames"] and
              cert["spec"]["secretName"] == "pipewarden-webhook-tls",
              "cert-manager Certificate: ECDSA P-256, the Service's names, the Secret the Deployment mounts")
    vap = find(r["all-components"], "ValidatingAdmissionPolicy", "pipewarden-injected")
    exprs = json.dumps(vap["spec"])
    res.check("pipewarden.io/inject" in exprs and "pipewarden.io/injected" in exprs,
              "the CEL backstop checks opted-in pods for pipewarden.io/injected")


def test_workloads(res, r):
    base = r["base"]
    for kind, name in (("Deployment", "pipewarden-webhook"), ("DaemonSet", "pipewarden-janitor")):
        spec = find(base, kind, name)["spec"]["template"]["spec"]
        c = spec["containers"][0]
        sc, psc = c["securityContext"], spec["securityContext"]
        res.check(psc.get("runAsNonRoot") is True and psc.get("seccompProfile") == {"type": "RuntimeDefault"}
                  and sc.get("readOnlyRootFilesystem") is True and sc.get("allowPrivilegeEscalation") is False
                  and sc.get("capabilities") == {"drop": ["ALL"]},
                  "%s: non-root, read-only root, no privilege escalation, no capabilities, RuntimeDefault" % name)
        res.check("requests" in c["resources"] and "memory" in c["resources"].get("limits", {}),
                  "%s: requests and a memory limit" % name)
    dep = find(base, "Deployment", "pipewarden-webhook")
    c = dep["spec"]["template"]["spec"]["containers"][0]
    res.check(dep["spec"]["replicas"] == 2 and dep["spec"]["template"]["spec"].get("topologySpreadConstraints"),
              "webhook: 2 replicas spread across nodes")
    res.check(c["readinessProbe"]["httpGet"]["path"] == "/readyz" and c["livenessProbe"]["httpGet"]["path"] == "/healthz",
              "webhook: readiness /readyz, liveness /healthz")
    res.check(find(base, "PodDisruptionBudget", "pipewarden-webhook") is not None, "webhook: PodDisruptionBudget")
    res.check(dep["spec"]["template"]["spec"].get("automountServiceAccountToken") is False,
              "webhook: no API token mounted (it calls no API)")
    ds = find(base, "DaemonSet", "pipewarden-janitor")["spec"]["template"]["spec"]
    env = {e["name"]: e.get("valueFrom", {}).get("fieldRef", {}).get("fieldPath") for e in ds["containers"][0]["env"]}
    res.check(env.get("NODE_NAME") == "spec.nodeName" and env.get("POD_NAMESPACE") == "metadata.namespace"
              and env.get("POD_NAME") == "metadata.name", "janitor: downward-API NODE_NAME, POD_NAMESPACE, POD_NAME")
    res.check(ds["tolerations"] == [{"operator": "Exists"}],
              "janitor tolerates every taint (spot, GPU and dedicated agent pools get one too)")
    scope = find(base, "ValidatingAdmissionPolicy", "pipewarden-janitor-scope")
    res.check(scope is not None and find(base, "ValidatingAdmissionPolicyBinding", "pipewarden-janitor-scope")
              is not None, "the base ships the janitor's ValidatingAdmissionPolicy and its binding")
    res.check(ds.get("priorityClassName") and find(base, "PriorityClass", ds["priorityClassName"]),
              "janitor: its PriorityClass")


def janitor_calls(tmp):
    """The Kubernetes calls of real janitor cycles, as (group, resource, verb, namespaced, name)."""
    test_janitor.ARGS = argparse.Namespace(bin=ARGS.janitor, wrapper="")
    env = test_janitor.Env(tmp)
    test_janitor.standard_state(env)
    # An agent Job that never got a pod: its FailedCreate Events are read.
    env.kube.add_podless_job("ci-agents", "quota-x1", 1000, failed_create=test_janitor.QUOTA_MSG)
    env.once()
    env.once()      # a second cycle renews the Lease (update)
    requests = env.kube.server.requests()
    env.stop()
    # A long-running leader remembers the pods of running jobs: when they
    # go, it reads their node and records an Event on their Job.
    env = test_janitor.Env(tmp)
    test_janitor.run_gone(env, after=2)
    requests += env.kube.server.requests()
    calls = set()
    for method, path, q, _, _ in requests:
        parts = path.strip("/").split("/")
        core = parts[0] == "api"
        group = "" if core else parts[1]
        rest = parts[2:] if core else parts[3:]
        ns = None
        if rest and rest[0] == "namespaces":
            ns, rest = rest[1], rest[2:]
        resource, name = rest[0], (rest[1] if len(rest) > 1 else None)
        verb = {"GET": "get" if name else "list", "POST": "create", "PUT": "update",
                "DELETE": "delete", "PATCH": "patch"}[method]
        calls.add((group, resource, verb, ns, name))
    env.stop()
    return calls


def test_rbac(res, r, tmp):
    base = r["base"]
    calls = janitor_calls(tmp)
    res.check(len(calls) >= 6, "recorded the janitor's API calls (%d kinds)" % len(calls), str(calls))
    grants = []     # (group, resource, verb, namespace or None for cluster, names or None)
    for o in base:
        if o["kind"] not in ("ClusterRole", "Role") or "janitor" not in o["metadata"]["name"]:
            continue
        ns = o["metadata"].get("namespace") if o["kind"] == "Role" else None
        for rule in o["rules"]:
            for g in rule["apiGroups"]:
                for res_ in rule["resources"]:
                    for v in rule["verbs"]:
                        grants.append((g, res_, v, ns, tuple(rule.get("resourceNames") or ()) or None))
    for (g, rs, v, ns, name) in sorted(calls, key=str):
        ok = any(gg == g and rr == rs and vv == v and (gns is None or gns == ns) and
                 (names is None or name in names) for gg, rr, vv, gns, names in grants)
        res.check(ok, "RBAC covers %s %s/%s%s" % (v, g or "core", rs, " in " + ns if ns else ""))
    for (g, rs, v, gns, names) in grants:
        used = any(cg == g and cr == rs and cv == v for cg, cr, cv, _, _ in calls)
        res.check(used, "RBAC grants only what the code uses: %s %s/%s" % (v, g or "core", rs))
    res.check(not any(v in ("*", "watch") or rs == "*" or g == "*" or (v == "patch" and rs != "pods")
                      for g, rs, v, _, _ in grants),
              "no wildcards, no watch; patch only on pods (the leader's annotations, narrowed by the policy)")
    lease_role = find(base, "Role", "pipewarden-janitor-leader")
    res.check(lease_role["metadata"]["namespace"] == "pipewarden-system", "Leases only in its own namespace")
    sa = [o for o in base if o["kind"] in ("ClusterRoleBinding", "RoleBinding")]
    res.check(all(s["subjects"] == [{"kind": "ServiceAccount", "name": "pipewarden-janitor",
                                      "namespace": "pipewarden-system"}] for s in sa),
              "bound to the janitor's ServiceAccount only")
    res.check(not any(o["kind"] in ("ClusterRole", "Role") and "webhook" in o["metadata"]["name"] for o in base),
              "the webhook has no role at all")


def job_pod(template, name):
    """The pod the Job controller makes from a ScaledJob's template."""
    meta = dict(template.get("metadata", {}))
    pod = {"kind": "Pod", "apiVersion": "v1",
           "metadata": {"generateName": name + "-", "creationTimestamp": None,
                        "labels": dict(meta.get("labels", {}), **{"job-name": name}),
                        "annotations": dict(meta.get("annotations", {})),
                        "ownerReferences": [{"apiVersion": "batch/v1", "kind": "Job", "name": name,
                                             "uid": "3f1c9a2e-0d4b-4e7a-9b1c-6a5d4e3f2a10",
                                             "controller": True, "blockOwnerDeletion": True}]},
           "spec": json.loads(json.dumps(template["spec"])), "status": {}}
    for c in pod["spec"]["containers"]:
        c.setdefault("resources", {})
        c.setdefault("terminationMessagePath", "/dev/termination-log")
        c.setdefault("terminationMessagePolicy", "File")
        c.setdefault("imagePullPolicy", "IfNotPresent")
    pod["spec"].setdefault("dnsPolicy", "ClusterFirst")
    pod["spec"].setdefault("serviceAccountName", "default")
    return pod


def test_examples_through_webhook(res, r, tmp):
    test_webhook.ARGS = argparse.Namespace(bin=ARGS.webhook, wrapper="", quick=False)
    hook = test_webhook.Webhook(tmp, config=os.path.join(M, "base", "config.json"))
    ex = r["examples"]
    cases = []
    for sj in (o for o in ex if o["kind"] == "ScaledJob"):
        cases.append((sj["metadata"]["name"], job_pod(sj["spec"]["jobTargetRef"]["template"],
                                                      sj["metadata"]["name"] + "-x7k2p")))
    dep = find(ex, "Deployment", "azdo-agent-pool")
    pod = job_pod(dep["spec"]["template"], "azdo-agent-pool-6b7d9f8c5d")
    pod["metadata"]["ownerReferences"][0].update(apiVersion="apps/v1", kind="ReplicaSet")
    cases.append(("deployment", pod))
    pods = []
    for name, pod in cases:
        review = {"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
                  "request": {"uid": "e0000000-0000-4000-8000-%012d" % len(pods),
                              "kind": {"group": "", "version": "v1", "kind": "Pod"},
                              "resource": {"group": "", "version": "v1", "resource": "pods"},
                              "namespace": "azdo-agents", "operation": "CREATE", "object": pod,
                              "oldObject": None, "dryRun": False}}
        status, body = hook.post(json.dumps(review).encode())
        expect = {"allowed": True, "patched": True}
        if name == "deployment":
            expect["warnings"] = ["pool 'linux-large' is not in the config's 'pools'"]
        patched = lib.check_answer(res, "example " + name, review, body.decode(), expect)
        if patched is None:
            continue
        agent = [c for c in patched["spec"]["containers"] if c["name"] == "agent"][0]
        envs = {e["name"] for e in agent["env"]}
        want = {"AZP_URL", "AZP_POOL", "AZP_AGENT_NAME", "AZP_WORK", "PIPEWARDEN_MANAGED", "PIPEWARDEN_POD_UID"}
        want |= {"AZP_TOKEN_FILE"} if "pat" in name else {"AZURE_FEDERATED_TOKEN_FILE", "AZURE_CLIENT_ID"}
        res.check(want <= envs, "example %s: the agent container comes out complete" % name,
                  str(sorted(want - envs)))
        res.check(agent["resources"].get("limits") and patched["metadata"]["labels"].get("pipewarden.io/managed") == "true",
                  "example %s: resources and labels filled in" % name)
        pods.append((name, patched))
    lib.validate_pods(res, pods)
    hook.stop(res, "examples webhook")


def test_promtool(res, tmp):
    if not shutil.which("promtool"):
        res.skip("promtool check/test rules", "promtool not installed")
        return
    with open(os.path.join(M, "monitoring", "prometheusrule.yaml")) as f:
        spec = yaml.safe_load(f)["spec"]
    rules = os.path.join(tmp, "rules.yaml")
    with open(rules, "w") as f:
        yaml.safe_dump(spec, f)
    shutil.copy(os.path.join(M, "monitoring", "rules-test.yaml"), tmp)
    p = subprocess.run(["promtool", "check", "rules", rules], capture_output=True, text=True)
    res.check(p.returncode == 0, "promtool check rules", p.stdout + p.stderr)
    p = subprocess.run(["promtool", "test", "rules", os.path.join(tmp, "rules-test.yaml")],
                       capture_output=True, text=True)
    res.check(p.returncode == 0, "promtool test rules (every alert fires, and stays quiet when healthy)",
              p.stdout + p.stderr)
    names = {r["alert"] for g in spec["groups"] for r in g["rules"]}
    res.check({"PipewardenWebhookCertificateExpiring", "PipewardenWebhookErrors", "PipewardenWebhookSlow",
               "PipewardenJanitorNoLeader", "PipewardenJanitorDeletionSpike",
               "PipewardenConfigReloadFailed", "PipewardenJobsWaiting"} <= names, "the alerts DESIGN's operators need")


def test_config(res):
    cfg = os.path.join(M, "base", "config.json")
    for b in (ARGS.webhook, ARGS.janitor):
        p = subprocess.run([b, "--check-config", "--config", cfg], capture_output=True, text=True)
        res.check(p.returncode == 0, "%s --check-config on the shipped config" % os.path.basename(b), p.stderr)
    res.check(os.path.exists(os.path.join(lib.ROOT, "Dockerfile")), "Dockerfile (untested: no Docker engine here)")


def main():
    global ARGS
    ap = argparse.ArgumentParser()
    ap.add_argument("--webhook", required=True)
    ap.add_argument("--janitor", required=True)
    ap.add_argument("--results")
    ARGS = ap.parse_args()
    res = lib.Results("manifests", ARGS.results)
    if not shutil.which("kubectl"):
        # Debian 12's own kubernetes-client (1.20) has a kustomize too old for
        # components; the machine image ships kubectl 1.32 (see README).
        res.skip("every manifest check", "kubectl not found")
        return res.done()
    with tempfile.TemporaryDirectory() as tmp:
        r = test_render(res, tmp)
        for t in (lambda: test_webhook_registration(res, r), lambda: test_workloads(res, r),
                  lambda: test_rbac(res, r, tmp), lambda: test_examples_through_webhook(res, r, tmp),
                  lambda: test_promtool(res, tmp), lambda: test_config(res)):
            try:
                t()
            except Exception as e:  # noqa: BLE001
                import traceback
                traceback.print_exc()
                res.check(False, "a manifest test ran to the end", repr(e))
    return res.done()


if __name__ == "__main__":
    sys.exit(main())

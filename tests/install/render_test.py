#!/usr/bin/python3
"""Generated files are up to date with their sources.

- charts/gantry/crds/gantry.dev_gatewayroutes.yaml is byte-identical to
  crds/gantry.dev_gatewayroutes.yaml (the one source of truth);
- manifests/install.yaml equals a fresh `hack/render-manifests.sh` render
  (Namespace, CRD, chart with default values in gantry-system);
- install.yaml's shape: Namespace first, CRD second, every namespaced object
  in gantry-system.
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402

helm = common.require_tool("helm")
t = common.Tally("render_test")
env = dict(os.environ, HELM=helm)
p = common.run(["bash", os.path.join(common.ROOT, "hack", "render-manifests.sh"), "--check"], env=env)
t.check(p.returncode == 0, "hack/render-manifests.sh --check: generated files are up to date",
        (p.stdout + p.stderr).strip())

install = os.path.join(common.ROOT, "manifests", "install.yaml")
docs = common.load_all(install) if os.path.exists(install) else []
t.check(len(docs) > 2, "install.yaml has objects", str(len(docs)))
if len(docs) > 2:
    t.check(docs[0]["kind"] == "Namespace" and docs[0]["metadata"]["name"] == "gantry-system",
            "install.yaml starts with the gantry-system Namespace")
    t.check(docs[1] == common.load_crd(), "install.yaml's second object is the CRD, as in crds/")
    kinds = [d["kind"] for d in docs]
    t.check(kinds.count("CustomResourceDefinition") == 1, "the CRD appears once")
    t.check("Deployment" in kinds and "Service" in kinds and "ClusterRole" in kinds, "the chart's objects follow")
    cluster = {"Namespace", "CustomResourceDefinition", "ClusterRole", "ClusterRoleBinding", "IngressClass"}
    for d in docs[2:]:
        if d["kind"] not in cluster:
            t.check(d["metadata"].get("namespace") == "gantry-system",
                    f"{d['kind']}/{d['metadata']['name']} is in gantry-system")
t.finish()

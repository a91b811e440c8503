"""The pod Kubeflow's notebook controller (v1.11) really makes for a notebook, as data, and
the manifest `podman kube play` runs to stand in for it.

One function per actor, each doing what that actor does to the object:
  notebook()     the Jupyter web app: a Notebook with the spawner form's defaults (cpu 0.5
                 with limit x1.2 = 0.6, memory 1Gi with limit x1.2 = 1.2Gi, a workspace PVC
                 on /home/jovyan, /dev/shm an emptyDir of medium Memory, no probes, no command)
  statefulset()  the notebook controller (generateStatefulSet): workingDir /home/jovyan,
                 port 8888 "notebook-port", NB_PREFIX=/notebook/<ns>/<name>, fsGroup 100
                 unless ADD_FSGROUP=false (OpenShift)
  pod()          the StatefulSet controller: pod <name>-0 from the template
  openshift()    the restricted-v2 SCC admission: an arbitrary uid from the namespace range
                 (primary group 0), that range's first id as fsGroup, no privilege
                 escalation, every capability dropped, RuntimeDefault seccomp
  for_podman()   the same pod for Podman 4.3's `kube play`, with what it ignores emulated

Plain dicts, written as YAML: this is the one place that knows the pod's shape.
"""

from __future__ import annotations

import copy
import secrets
from dataclasses import dataclass
from pathlib import Path

import yaml

from nbpipe.recipe import contract

NAMESPACE = "kubeflow-user-example-com"  # the profile Kubeflow's manifests create
GRACE_SECONDS = 30  # Kubernetes' default terminationGracePeriodSeconds: the controller sets none
CPU_REQUEST, MEMORY_REQUEST = "0.5", "1.0Gi"  # spawner_ui_config.yaml defaults
LIMIT_FACTOR = 1.2  # spawner_ui_config.yaml: cpu and memory limitFactor
DEFAULT_FS_GROUP = 100  # notebook_controller.go DefaultFSGroup
OPENSHIFT_UID = 1000650000  # the first id of a typical namespace range (restricted-v2)
FLAVORS = ("kubeflow", "openshift")


@dataclass(frozen=True)
class Names:
    """A notebook's name and namespace, and what the controller derives from them."""

    name: str
    namespace: str = NAMESPACE

    @classmethod
    def random(cls) -> "Names":
        return cls(f"nbpipe-{secrets.token_hex(3)}")

    @property
    def prefix(self) -> str:
        """NB_PREFIX as setPrefixEnvVar writes it (no trailing slash)."""
        return f"/notebook/{self.namespace}/{self.name}"

    @property
    def pod(self) -> str:
        return f"{self.name}-0"

    @property
    def claim(self) -> str:
        """The workspace PVC (spawner_ui_config: {notebook-name}-workspace); the pod's
        volume has the claim's name (volumes.py get_pod_volume)."""
        return f"{self.name}-workspace"

    @property
    def container(self) -> str:
        """The container's name under `podman kube play`: <pod>-<container>."""
        return f"{self.pod}-{self.name}"

    @property
    def service_host(self) -> str:
        """Where the culler sends its GET (the notebook's Service)."""
        return f"{self.name}.{self.namespace}.svc.cluster.local"


def _limit(quantity: str) -> str:
    """form.py: round(value x limitFactor, 1), keeping the unit."""
    unit = quantity.lstrip("0123456789.")
    return f"{round(float(quantity.removesuffix(unit)) * LIMIT_FACTOR, 1)}{unit}"


def notebook(names: Names, image: str) -> dict:
    """The Notebook the Jupyter web app creates from the form's defaults."""
    return {
        "apiVersion": "kubeflow.org/v1beta1",
        "kind": "Notebook",
        "metadata": {
            "name": names.name,
            "namespace": names.namespace,
            "labels": {"app": names.name},
            "annotations": {
                "notebooks.kubeflow.org/server-type": "jupyter",
                "notebooks.kubeflow.org/creator": "user@example.com",
            },
        },
        "spec": {
            "template": {
                "spec": {
                    "serviceAccountName": "default-editor",
                    "containers": [
                        {
                            "name": names.name,
                            "image": image,
                            "imagePullPolicy": "IfNotPresent",
                            "volumeMounts": [
                                {"mountPath": contract.HOME, "name": names.claim},
                                {"mountPath": "/dev/shm", "name": "dshm"},
                            ],
                            "env": [],
                            "resources": {
                                "requests": {"cpu": CPU_REQUEST, "memory": MEMORY_REQUEST},
                                "limits": {
                                    "cpu": _limit(CPU_REQUEST),
                                    "memory": _limit(MEMORY_REQUEST),
                                },
                            },
                        }
                    ],
                    "volumes": [
                        {"name": names.claim, "persistentVolumeClaim": {"claimName": names.claim}},
                        {"name": "dshm", "emptyDir": {"medium": "Memory"}},
                    ],
                    "tolerations": [],
                }
            }
        },
    }


def statefulset(nb: dict, *, add_fs_group: bool = True) -> dict:
    """generateStatefulSet: the template is the Notebook's, plus the controller's defaults."""
    meta = nb["metadata"]
    name = meta["name"]
    spec = copy.deepcopy(nb["spec"]["template"]["spec"])
    labels = {"statefulset": name, "notebook-name": name, **meta.get("labels", {})}
    annotations = {
        k: v
        for k, v in meta.get("annotations", {}).items()
        if "kubectl" not in k and "notebook" not in k
    }
    c = spec["containers"][0]
    c.setdefault("workingDir", contract.HOME)
    c.setdefault(
        "ports", [{"containerPort": contract.PORT, "name": "notebook-port", "protocol": "TCP"}]
    )
    env = [e for e in c.get("env", []) if e["name"] != "NB_PREFIX"]
    c["env"] = [*env, {"name": "NB_PREFIX", "value": f"/notebook/{meta['namespace']}/{name}"}]
    if add_fs_group and spec.get("securityContext") is None:
        spec["securityContext"] = {"fsGroup": DEFAULT_FS_GROUP}
    return {
        "apiVersion": "apps/v1",
        "kind": "StatefulSet",
        "metadata": {"name": name, "namespace": meta["namespace"]},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": {"statefulset": name}},
            "template": {"metadata": {"labels": labels, "annotations": annotations}, "spec": spec},
        },
    }


def pod(ss: dict) -> dict:
    """Ordinal 0 of the StatefulSet, with the API server's defaults that matter here."""
    name = f"{ss['metadata']['name']}-0"
    tmpl = copy.deepcopy(ss["spec"]["template"])
    spec = tmpl["spec"]
    spec.setdefault("terminationGracePeriodSeconds", GRACE_SECONDS)
    spec.setdefault("restartPolicy", "Always")
    spec["hostname"] = name
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": name,
            "namespace": ss["metadata"]["namespace"],
            "labels": {**tmpl["metadata"]["labels"], "statefulset.kubernetes.io/pod-name": name},
            "annotations": tmpl["metadata"].get("annotations", {}),
        },
        "spec": spec,
    }


def openshift(p: dict, uid: int = OPENSHIFT_UID) -> dict:
    """What the restricted-v2 SCC admission sets on a pod that asks for nothing."""
    p = copy.deepcopy(p)
    spec = p["spec"]
    spec["securityContext"] = {
        "fsGroup": uid,
        "runAsUser": uid,
        "runAsNonRoot": True,
        "seccompProfile": {"type": "RuntimeDefault"},
    }
    for c in spec["containers"]:
        c["securityContext"] = {
            "allowPrivilegeEscalation": False,
            "runAsNonRoot": True,
            "runAsUser": uid,
            "capabilities": {"drop": ["ALL"]},
        }
    p["metadata"].setdefault("annotations", {})["openshift.io/scc"] = "restricted-v2"
    return p


def kubernetes_pod(names: Names, image: str, flavor: str = "kubeflow") -> dict:
    """The pod a cluster runs for a notebook spawned with the form's defaults."""
    if flavor not in FLAVORS:
        raise ValueError(f"flavor {flavor!r}: one of {FLAVORS}")
    p = pod(statefulset(notebook(names, image), add_fs_group=flavor == "kubeflow"))
    return openshift(p) if flavor == "openshift" else p


def fs_group(p: dict) -> int | None:
    return (p["spec"].get("securityContext") or {}).get("fsGroup")


def memory_bytes(quantity: str) -> int:
    """A Kubernetes memory quantity in bytes, rounded up as the API server does."""
    units = {
        "Ki": 2**10,
        "Mi": 2**20,
        "Gi": 2**30,
        "Ti": 2**40,
        "k": 10**3,
        "M": 10**6,
        "G": 10**9,
        "T": 10**12,
    }
    for unit, factor in units.items():
        if quantity.endswith(unit):
            value = float(quantity.removesuffix(unit)) * factor
            return int(-(-value // 1))
    return int(-(-float(quantity) // 1))


def for_podman(p: dict, *, home: Path, shm: Path, port: int) -> dict:
    """The pod for `podman kube play` (4.3), each part it does not honour emulated so the
    container sees what the kubelet would give it:

    - the workspace PVC becomes a hostPath of ``home``, which the caller makes as a fresh
      PVC root after kubelet's fsGroup change: root:<fsGroup>, mode 2775. (A podman named
      volume would first copy the image's /home/jovyan in: not what a fresh PVC holds.)
    - fsGroup is ignored by 4.3: the kubelet also adds it to the container's groups, so it
      becomes supplementalGroups here (which 4.3 honours).
    - emptyDir medium Memory becomes a plain directory on disk under 4.3: /dev/shm is a
      hostPath of ``shm``, which the caller mounts as a tmpfs as large as the memory limit
      (what a memory-backed emptyDir is sized to).
    - a fractional memory limit ("1.2Gi") is misread by 4.3 (1.2Gi became 1.29e18 bytes):
      limits and requests are written in bytes, as the API server rounds them.
    - cpu limits are honoured (a CFS quota of 60000/100000 for 0.6), as are runAsUser,
      allowPrivilegeEscalation (no-new-privileges), capabilities and seccomp.
    - terminationGracePeriodSeconds is ignored (4.3 stops with its own 10 s): the caller
      stops the pod with the pod's grace period itself.
    - the pod is reached on 127.0.0.1:``port`` (hostPort), as a Service would reach it.
    """
    p = copy.deepcopy(p)
    spec = p["spec"]
    group = fs_group(p)
    if group is not None:
        sc = spec["securityContext"]
        sc["supplementalGroups"] = sorted({*sc.get("supplementalGroups", []), group})
    for v in spec["volumes"]:
        if "persistentVolumeClaim" in v:
            del v["persistentVolumeClaim"]
            v["hostPath"] = {"path": str(home), "type": "Directory"}
        elif (v.get("emptyDir") or {}).get("medium") == "Memory":
            del v["emptyDir"]
            v["hostPath"] = {"path": str(shm), "type": "Directory"}
    c = spec["containers"][0]
    for kind in ("requests", "limits"):
        res = c.get("resources", {}).get(kind, {})
        if "memory" in res:
            res["memory"] = str(memory_bytes(res["memory"]))
    for ports in c["ports"]:
        if ports["name"] == "notebook-port":
            ports.update(hostPort=port, hostIP="127.0.0.1")
    spec.pop("serviceAccountName", None)  # no API server to mount a token from
    spec.pop("tolerations", None)
    return p


def memory_limit(p: dict) -> int | None:
    q = p["spec"]["containers"][0].get("resources", {}).get("limits", {}).get("memory")
    return None if q is None else memory_bytes(q)


def cpu_limit(p: dict) -> str | None:
    return p["spec"]["containers"][0].get("resources", {}).get("limits", {}).get("cpu")


def dump(obj: dict) -> str:
    return yaml.safe_dump(obj, sort_keys=False, default_flow_style=False)

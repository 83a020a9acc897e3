"""deploy/kubernetes/ rendered by `kubectl kustomize` and checked by the tools made for it.

- The rendered objects pass kubernetes-validate in strict mode (unknown fields are errors), against the
  oldest Kubernetes the manifests use features of and the newest schema the validator ships.
- The properties an operator relies on, read from the rendered objects: probes, security contexts,
  the PodDisruptionBudget's selector, a cache volume as large as the three tiers' bounds (parsed with
  the proxy's own size parser) plus headroom, a memory limit that holds the render budgets, a Secret
  template of placeholders that is never rendered, and the settings accepted by `preview-proxy config`.
- The front: routing.conf byte-identical to deploy/cluster/routing.conf, one upstream member per
  StatefulSet replica, an nginx image new enough for `resolve`, and the front's configuration run by
  Debian's nginx on loopback (`nginx -t`, then requests through it to stand-in pods).
"""

import json
import math
import os
import re
import secrets
import shutil
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from proxy.config import read_workers
from proxy.settings.units import parse_size
from tests.support.nginx_front import free_port, nginx_missing, run_nginx

REPO = Path(__file__).resolve().parent.parent
BASE = REPO / "deploy" / "kubernetes"
CLUSTER_ROUTING = REPO / "deploy" / "cluster" / "routing.conf"
KUBECTL = shutil.which("kubectl")
# The oldest version whose API the manifests need (PodDisruptionBudget's unhealthyPodEvictionPolicy is
# GA in 1.31), and the newest the validator has schemas for.
KUBERNETES_VERSIONS = ("1.31.0", "1.37.0")
# Room on the cache volume beyond the three bounds: part files of fills in flight and file-system overhead.
CACHE_HEADROOM = 1.10
# Per worker process besides its render budget and previews memory cache: the interpreter, Pillow, PyAV,
# aiohttp and buffers; and the supervisor. Measured with `serve --workers 2` after a few renders: about
# 60 MiB of RSS per worker, 40 MiB for the supervisor and 13 MiB for multiprocessing's resource tracker.
WORKER_BASELINE = 150 * 1024**2
SUPERVISOR = 100 * 1024**2
SECRET_SETTINGS = {"STORAGE_ACCESS_KEY", "STORAGE_SECRET_KEY", "IMGPROXY_KEY", "IMGPROXY_SALT"}
# `resolve` on an upstream server is in open-source nginx from 1.27.3 on.
NGINX_RESOLVE_SINCE = (1, 27, 3)

pytestmark = pytest.mark.skipif(KUBECTL is None, reason="kubectl is not installed (bash deploy/dev.sh setup)")
kubernetes_validate = pytest.importorskip("kubernetes_validate", reason="kubernetes-validate is a test extra (pip)")

Object = dict[str, Any]


def kustomize(directory: Path) -> list[Object]:
    """`kubectl kustomize <directory>` (offline), as a list of objects."""
    assert KUBECTL is not None
    result = subprocess.run([KUBECTL, "kustomize", str(directory)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    return [item for item in yaml.safe_load_all(result.stdout) if item]


@pytest.fixture(scope="module")
def rendered() -> list[Object]:
    """The base as an operator's `kubectl apply -k` would send it."""
    return kustomize(BASE)


def one(objects: list[Object], kind: str, name_prefix: str) -> Object:
    """The one object of `kind` whose name is `name_prefix` (generated ConfigMaps: plus their hash suffix)."""
    found = [o for o in objects if o["kind"] == kind
             and re.fullmatch(re.escape(name_prefix) + r"(-[a-z0-9]{10})?", o["metadata"]["name"])]
    assert len(found) == 1, f"{len(found)} {kind} objects named {name_prefix}"
    return found[0]


def settings(objects: list[Object]) -> dict[str, str]:
    """The proxy's ConfigMap: its environment."""
    return dict(one(objects, "ConfigMap", "preview-proxy-settings")["data"])


def quantity(text: str) -> int:
    """A Kubernetes quantity in bytes (`20Gi`, `512Mi`, `1G`, plain bytes)."""
    units = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "k": 10**3, "M": 10**6, "G": 10**9, "T": 10**12}
    match = re.fullmatch(r"([0-9]+)([KMGT]i|[kMGT])?", str(text))
    assert match is not None, f"unexpected quantity {text!r}"
    return int(match.group(1)) * units.get(match.group(2) or "", 1)


def cpus(text: str) -> float:
    """A CPU quantity (`2`, `500m`) in cores."""
    return int(text[:-1]) / 1000 if str(text).endswith("m") else float(text)


def pod_spec(workload: Object) -> Object:
    """The pod template's spec of a StatefulSet or Deployment."""
    return dict(workload["spec"]["template"]["spec"])


def selects(selector: Object, labels: dict[str, str]) -> bool:
    """Whether a `matchLabels` selector picks pods with `labels`."""
    return all(labels.get(k) == v for k, v in selector["matchLabels"].items())


# --- validation --------------------------------------------------------------------------------------

@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
def test_rendered_objects_pass_strict_schema_validation(rendered: list[Object], version: str) -> None:
    kinds = sorted(o["kind"] for o in rendered)
    assert kinds == ["ConfigMap", "ConfigMap", "Deployment", "PodDisruptionBudget", "PodDisruptionBudget",
                     "Service", "Service", "StatefulSet"]
    for item in rendered:
        kubernetes_validate.validate(item, version, strict=True)
    # Negative control: strict mode catches a misspelt field the API server would silently drop.
    typo = yaml.safe_load(yaml.safe_dump(one(rendered, "StatefulSet", "preview-proxy")))
    typo["spec"]["template"]["spec"]["containers"][0]["securityContext"]["readOnlyRootFileSystem"] = True
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(typo, version, strict=True)


# --- the proxy ---------------------------------------------------------------------------------------

def test_proxy_pods_have_stable_names_under_a_headless_service(rendered: list[Object]) -> None:
    statefulset = one(rendered, "StatefulSet", "preview-proxy")
    headless = one(rendered, "Service", statefulset["spec"]["serviceName"])
    assert headless["spec"]["clusterIP"] == "None"
    assert headless["spec"]["publishNotReadyAddresses"] is True
    pod_labels = statefulset["spec"]["template"]["metadata"]["labels"]
    assert selects({"matchLabels": headless["spec"]["selector"]}, pod_labels)
    front = one(rendered, "Service", "preview-proxy")
    assert front["spec"]["type"] == "ClusterIP"
    front_labels = one(rendered, "Deployment", "preview-proxy-front")["spec"]["template"]["metadata"]["labels"]
    assert selects({"matchLabels": front["spec"]["selector"]}, front_labels)
    assert not selects({"matchLabels": front["spec"]["selector"]}, pod_labels)


def test_probes_are_healthz_and_readyz_on_the_served_port(rendered: list[Object]) -> None:
    container = pod_spec(one(rendered, "StatefulSet", "preview-proxy"))["containers"][0]
    env = settings(rendered)
    port = next(p for p in container["ports"] if p["name"] == "http")
    assert port["containerPort"] == int(env["SERVER_PORT"])
    assert env["SERVER_HOST"] == "0.0.0.0"
    assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
    assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}
    # /healthz is 503 until every worker listens: liveness must wait for the startup probe.
    assert container["startupProbe"]["httpGet"]["path"] == "/healthz"
    # /readyz gives the provider 3 s; a probe that times out sooner would fail a slow but healthy pod.
    assert container["readinessProbe"]["timeoutSeconds"] > 3


@pytest.mark.parametrize("workload", [("StatefulSet", "preview-proxy"), ("Deployment", "preview-proxy-front")])
def test_pods_run_unprivileged_on_a_read_only_root(rendered: list[Object], workload: tuple[str, str]) -> None:
    spec = pod_spec(one(rendered, *workload))
    pod = spec["securityContext"]
    assert pod["runAsNonRoot"] is True and pod["runAsUser"] > 0
    assert pod["seccompProfile"] == {"type": "RuntimeDefault"}
    assert spec["automountServiceAccountToken"] is False
    assert spec["enableServiceLinks"] is False  # a Service named `storage` would set STORAGE_PORT
    for container in spec["containers"]:
        context = container["securityContext"]
        assert context["readOnlyRootFilesystem"] is True
        assert context["allowPrivilegeEscalation"] is False
        assert context["capabilities"]["drop"] == ["ALL"]
        mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
        empty_dirs = {v["name"] for v in spec["volumes"] if "emptyDir" in v}
        assert mounts.get("/tmp") in empty_dirs, "a read-only root needs a writable /tmp"


def test_disruption_budget_selects_the_proxy_pods(rendered: list[Object]) -> None:
    statefulset = one(rendered, "StatefulSet", "preview-proxy")
    budget = one(rendered, "PodDisruptionBudget", "preview-proxy")
    assert selects(budget["spec"]["selector"], statefulset["spec"]["template"]["metadata"]["labels"])
    assert budget["spec"]["maxUnavailable"] == 1 < statefulset["spec"]["replicas"]
    front = one(rendered, "Deployment", "preview-proxy-front")
    front_budget = one(rendered, "PodDisruptionBudget", "preview-proxy-front")
    assert selects(front_budget["spec"]["selector"], front["spec"]["template"]["metadata"]["labels"])
    assert not selects(front_budget["spec"]["selector"], statefulset["spec"]["template"]["metadata"]["labels"])


def test_cache_volume_holds_the_three_tiers_with_headroom(rendered: list[Object]) -> None:
    statefulset = one(rendered, "StatefulSet", "preview-proxy")
    env = settings(rendered)
    bounds = sum(parse_size(env[f"CACHE_{tier}_SIZE"]) for tier in ("PREVIEWS", "STORAGE", "IMAGE_CONVERTER"))
    claims = {c["metadata"]["name"]: c for c in statefulset["spec"]["volumeClaimTemplates"]}
    mounts = {m["mountPath"]: m["name"] for m in pod_spec(statefulset)["containers"][0]["volumeMounts"]}
    claim = claims[mounts[env["DATA_PATH"]]]  # the tiers live under DATA_PATH/cache
    assert "CACHE_PATH" not in env
    assert claim["spec"]["accessModes"] == ["ReadWriteOnce"]
    assert quantity(claim["spec"]["resources"]["requests"]["storage"]) >= bounds * CACHE_HEADROOM


def test_memory_limit_holds_every_workers_render_budget(rendered: list[Object]) -> None:
    env = settings(rendered)
    resources = pod_spec(one(rendered, "StatefulSet", "preview-proxy"))["containers"][0]["resources"]
    # What the server reads in the pod: `auto` counts the pod's CPU limit (proxy.runtime.cores).
    workers = read_workers(env, None, cores=lambda: math.ceil(cpus(resources["limits"]["cpu"]))).number
    # Set explicitly: their defaults count the node's memory and cores, not the pod's limits.
    per_worker = parse_size(env["RENDER_MEMORY_LIMIT"]) + parse_size(env["CACHE_PREVIEWS_MEMORY"]) + WORKER_BASELINE
    assert quantity(resources["limits"]["memory"]) >= workers * per_worker + SUPERVISOR
    assert workers <= cpus(resources["limits"]["cpu"])
    assert 1 <= int(env["IMGPROXY_WORKERS"]) <= cpus(resources["limits"]["cpu"])  # renders at once, per pod
    # Guaranteed QoS: the warm caches are the last thing a node under pressure should evict.
    assert resources["requests"]["memory"] == resources["limits"]["memory"]
    assert resources["requests"]["cpu"] == resources["limits"]["cpu"]


def test_secret_is_a_template_of_placeholders_that_is_never_rendered(rendered: list[Object]) -> None:
    assert not [o for o in rendered if o["kind"] == "Secret"]
    example = yaml.safe_load((BASE / "proxy" / "secret.example.yaml").read_text())
    refs = [source["secretRef"] for source in pod_spec(one(rendered, "StatefulSet", "preview-proxy"))
            ["containers"][0]["envFrom"] if "secretRef" in source]
    assert refs == [{"name": example["metadata"]["name"]}]  # not optional: a missing Secret stops the pod
    values = example["stringData"]
    assert set(values) == SECRET_SETTINGS
    for name, value in values.items():
        assert re.fullmatch(r"<[a-z ]+>", value), f"{name} is not a placeholder: a real-looking value"
    assert not SECRET_SETTINGS & set(settings(rendered)), "a secret setting in the ConfigMap"


def run_config(env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    """`preview-proxy --strict-config config --json` with exactly `env` (no .env file: `cwd` is empty)."""
    return subprocess.run([sys.executable, "-m", "proxy.runtime.cli", "--strict-config", "config", "--json"],
                          cwd=cwd, capture_output=True,
                          text=True, timeout=60, env={"PYTHONPATH": str(REPO), **env})


def test_settings_are_accepted_by_the_proxy_and_placeholders_are_not(rendered: list[Object], tmp_path: Path) -> None:
    env = settings(rendered)
    keys = {"STORAGE_ACCESS_KEY": "test-access", "STORAGE_SECRET_KEY": secrets.token_hex(16),
            "IMGPROXY_KEY": secrets.token_hex(32), "IMGPROXY_SALT": secrets.token_hex(16)}
    accepted = run_config({**env, **keys}, tmp_path)
    assert accepted.returncode == 0, accepted.stderr  # strict: every name the manifests set is a setting
    shown = json.loads(accepted.stdout)
    assert (shown["SERVER_HOST"]["value"], shown["SERVER_PORT"]["value"]) == ("0.0.0.0", "8080")
    assert shown["RENDER_MEMORY_LIMIT"]["value"] == str(parse_size(env["RENDER_MEMORY_LIMIT"]))
    placeholders = yaml.safe_load((BASE / "proxy" / "secret.example.yaml").read_text())["stringData"]
    refused = run_config({**env, **placeholders}, tmp_path)
    assert refused.returncode == 2 and "IMGPROXY_KEY" in refused.stderr, refused.stderr


# --- the front ---------------------------------------------------------------------------------------

def front_files(objects: list[Object]) -> dict[str, str]:
    """The front's ConfigMap: file name -> text."""
    return dict(one(objects, "ConfigMap", "preview-proxy-front")["data"])


def test_routing_conf_is_a_copy_of_the_cluster_one(rendered: list[Object]) -> None:
    copy = BASE / "front" / "routing.conf"
    assert front_files(rendered)["routing.conf"] == copy.read_text()
    if not CLUSTER_ROUTING.exists():
        pytest.skip("deploy/cluster/routing.conf does not exist")
    assert copy.read_bytes() == CLUSTER_ROUTING.read_bytes(), "re-copy deploy/cluster/routing.conf"


def upstream_servers(template: str) -> list[tuple[str, str]]:
    """(address, parameters) of each `server` line of the upstream block."""
    return re.findall(r"^\s*server (\S+) ([^;]*);", template, re.MULTILINE)


def test_upstream_lists_each_statefulset_pod_once(rendered: list[Object]) -> None:
    statefulset = one(rendered, "StatefulSet", "preview-proxy")
    template = front_files(rendered)["upstream.conf.template"]
    assert re.search(r"^\s*hash \$preview_proxy_route_key consistent;", template, re.MULTILINE)
    port = pod_spec(statefulset)["containers"][0]["ports"][0]["containerPort"]
    name, service = statefulset["metadata"]["name"], statefulset["spec"]["serviceName"]
    expected = [f"{name}-{n}.{service}.${{POD_NAMESPACE}}.svc.${{CLUSTER_DOMAIN}}:{port}"
                for n in range(statefulset["spec"]["replicas"])]
    servers = upstream_servers(template)
    assert [address for address, _ in servers] == expected
    assert all("resolve" in parameters.split() for _, parameters in servers)


def test_front_image_supports_upstream_resolve(rendered: list[Object]) -> None:
    container = pod_spec(one(rendered, "Deployment", "preview-proxy-front"))["containers"][0]
    match = re.fullmatch(r"nginxinc/nginx-unprivileged:(\d+)\.(\d+)(?:\.(\d+))?(?:-\S+)?", container["image"])
    assert match is not None, container["image"]
    version = tuple(int(part or 0) for part in match.groups())
    # A tag without a patch level (1.28) is every release of that branch; 1.27 would include 1.27.0.
    assert version >= NGINX_RESOLVE_SINCE and (match.group(3) or version[:2] > NGINX_RESOLVE_SINCE[:2])
    proxy = pod_spec(one(rendered, "StatefulSet", "preview-proxy"))["containers"][0]
    assert proxy["image"] == "preview-proxy:latest"
    # Every ${VARIABLE} of the template is in the container's environment (or the entrypoint's resolvers).
    defined = {e["name"] for e in container["env"]} | {"NGINX_LOCAL_RESOLVERS"}
    used = set(re.findall(r"\$\{(\w+)\}", front_files(rendered)["upstream.conf.template"]))
    assert used <= defined, used - defined


def test_overlay_sets_namespace_image_and_scale(rendered: list[Object], tmp_path: Path) -> None:
    """The recipe kustomization.yaml gives for scaling, in an overlay: replicas and the ring together."""
    template = front_files(rendered)["upstream.conf.template"]
    servers = upstream_servers(template)
    line = next(line for line in template.splitlines() if line.strip().startswith("server "))
    fourth = line.replace("preview-proxy-0.", f"preview-proxy-{len(servers)}.")
    (tmp_path / "upstream.conf.template").write_text(template.replace(line, line + "\n" + fourth))
    (tmp_path / "kustomization.yaml").write_text(yaml.safe_dump({
        "resources": [os.path.relpath(BASE, tmp_path)], "namespace": "media",  # kustomize takes no absolute base
        "images": [{"name": "preview-proxy", "newName": "registry.example.com/preview-proxy", "newTag": "1.2.3"}],
        "replicas": [{"name": "preview-proxy", "count": len(servers) + 1}],
        "configMapGenerator": [{"name": "preview-proxy-front", "behavior": "merge",
                                "files": ["upstream.conf.template"]}],
    }))
    overlay = kustomize(tmp_path)
    statefulset = one(overlay, "StatefulSet", "preview-proxy")
    assert statefulset["metadata"]["namespace"] == "media"
    assert pod_spec(statefulset)["containers"][0]["image"] == "registry.example.com/preview-proxy:1.2.3"
    assert statefulset["spec"]["replicas"] == len(upstream_servers(front_files(overlay)["upstream.conf.template"]))
    assert front_files(overlay)["routing.conf"] == front_files(rendered)["routing.conf"]
    # The front's ConfigMap got a new name, so the front rolls out with the new ring.
    names = {one(objects, "ConfigMap", "preview-proxy-front")["metadata"]["name"] for objects in (rendered, overlay)}
    assert len(names) == 2


# --- the front's nginx configuration, run by Debian's nginx ------------------------------------------

def loopback_config(files: dict[str, str], directory: Path, listen: int, pods: list[int], down: int = 0) -> Path:
    """The front's files with its in-cluster parts swapped for loopback ones, each swap checked to apply.

    The pods become `pods` ports, `resolve` goes (Debian 12's nginx 1.22 predates it), the entrypoint's
    variables get values, and the paths of the pod (/etc/nginx/..., /tmp) point into `directory`. The
    last `down` pods get no stand-in: nothing listens on their ports.
    """
    upstream = files["upstream.conf.template"]
    for variable, value in {"POD_NAMESPACE": "test", "CLUSTER_DOMAIN": "cluster.local",
                            "NGINX_LOCAL_RESOLVERS": "127.0.0.1"}.items():
        upstream = upstream.replace("${" + variable + "}", value)
    addresses = iter(pods)
    upstream, count = re.subn(r"^(\s*server )\S+ resolve ", lambda m: f"{m.group(1)}127.0.0.1:{next(addresses)} ",
                              upstream, flags=re.MULTILINE)
    assert count == len(pods) and "${" not in upstream
    (directory / "upstream.conf").write_text(upstream)
    (directory / "routing.conf").write_text(files["routing.conf"])
    text = files["nginx.conf"]
    for old, new in (("/tmp/", f"{directory}/"), ("/etc/nginx/front/routing.conf", f"{directory}/routing.conf"),
                     ("/etc/nginx/conf.d/upstream.conf", f"{directory}/upstream.conf"),
                     ("listen 8080;", f"listen 127.0.0.1:{listen};")):
        assert old in text, old
        text = text.replace(old, new)
    # Stand-in pods, each answering with its own port. As root, nginx's workers would run as nobody and
    # could not read the test's directories: they run as root here.
    stand_ins = "".join(f"    server {{ listen 127.0.0.1:{p}; location / {{ return 200 \"{p}\"; }} }}\n"
                        for p in pods[:len(pods) - down])
    text = text.replace("http {\n", "http {\n" + stand_ins, 1)
    text = ("user root;\n" if os.geteuid() == 0 else "") + text
    conf = directory / "nginx.conf"
    conf.write_text(text)
    return conf


@pytest.fixture(params=[0, 1], ids=["all-pods-up", "one-pod-down"])
def front(rendered: list[Object], tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[tuple[int, int]]:
    """The rendered front's nginx configuration on loopback before three pods, all or all but one standing in.

    Yields (the front's port, how many pods answer).
    """
    if nginx_missing() is not None:
        pytest.skip(str(nginx_missing()))
    listen = free_port()
    conf = loopback_config(front_files(rendered), tmp_path, listen, [free_port() for _ in range(3)], request.param)
    checked = subprocess.run(["/usr/sbin/nginx", "-t", "-c", str(conf), "-p", str(tmp_path)], capture_output=True,
                             text=True, timeout=30)
    assert checked.returncode == 0, checked.stderr
    with run_nginx(conf, listen):
        yield listen, 3 - request.param


# No proxy from the environment between the test and loopback.
DIRECT = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def get(port: int, path: str) -> tuple[int, str]:
    """(status, body) of a GET through the front."""
    try:
        with DIRECT.open(f"http://127.0.0.1:{port}{path}", timeout=10) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, ""


def test_front_sends_every_size_of_an_original_to_one_pod(front: tuple[int, int]) -> None:
    """Every form of one original reaches one pod; a pod that refuses connections is routed around."""
    front, answering = front
    assert get(front, "/front-healthz") == (200, "ok\n")
    assert get(front, "/metrics")[0] == 404
    pods_by_original = {}
    for original in (f"photos/{n}.jpg" for n in range(30)):
        paths = [f"/{original}"] + [f"/previews/q/rs:fit:{w}:0/q:70/plain/{original}@webp" for w in (50, 300, 1024)]
        answers = {get(front, path) for path in paths}
        assert len(answers) == 1, f"{original} was answered by {answers}"
        pods_by_original[original] = answers.pop()
    # Every answer is a 200 from a live pod, and the originals are spread over all of them (a negative
    # control: a key that ignored the original would also give one answer per original).
    assert {status for status, _ in pods_by_original.values()} == {200}
    assert len(set(pods_by_original.values())) == answering

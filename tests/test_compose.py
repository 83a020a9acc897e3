"""deploy/compose/ checked offline: no container engine runs here, so each file goes to the tool made for it.

- compose.yaml parses, pins every image to a tag, and interpolates only variables .env.example lists
  (and .env.example lists none it does not use);
- the environment a preview-proxy container gets from compose.yaml and .env.example is read by the
  server: Config.from_env accepts it, and reads every variable in it;
- prometheus.yml passes `promtool check config` with the rules compose mounts;
- the cluster front's nginx.conf, with deploy/cluster/routing.conf, passes `nginx -t` once its
  compose host names are replaced by loopback addresses;
- Grafana's provisioning points where compose mounts the dashboard of deploy/monitoring/;
- the one-shot that creates MinIO's bucket and user runs twice cleanly (against a stand-in `mc`);
- `docker compose config` runs where a container engine does.
"""

import os
import re
import shutil
import subprocess
from collections.abc import Iterator, Mapping
from pathlib import Path, PurePosixPath
from typing import Any

import pytest
import yaml

from proxy.config import Config

REPO = Path(__file__).resolve().parent.parent
COMPOSE_DIR = REPO / "deploy" / "compose"
COMPOSE = COMPOSE_DIR / "compose.yaml"
ENV_EXAMPLE = COMPOSE_DIR / ".env.example"
PROMETHEUS = COMPOSE_DIR / "prometheus.yml"
NGINX_CONF = COMPOSE_DIR / "nginx.conf"
ROUTING = REPO / "deploy" / "cluster" / "routing.conf"
PROVISIONING = COMPOSE_DIR / "grafana" / "provisioning"
RULES = REPO / "deploy" / "monitoring" / "alerts.yml"
DASHBOARD = REPO / "deploy" / "monitoring" / "grafana-dashboard.json"
NGINX = "/usr/sbin/nginx"
PROMTOOL = shutil.which("promtool")
DOCKER = shutil.which("docker")
CLUSTER_PROFILE = "cluster"
PROXY_PORT = 8080  # what the image listens on

# ${NAME}, ${NAME:-default}, ${NAME-default}, ${NAME:?error}, ${NAME?error}, $NAME; `$$` is a literal `$`.
INTERPOLATION = re.compile(r"\$(?:\$|\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-?])([^}]*))?\}|([A-Za-z_][A-Za-z0-9_]*))")
ENV_LINE = re.compile(r"^([A-Za-z_][A-Za-z0-9_]*)=(.*)$")


def compose() -> dict[str, Any]:
    """compose.yaml, parsed (YAML merge keys resolved)."""
    parsed: dict[str, Any] = yaml.safe_load(COMPOSE.read_text())
    return parsed


def env_example() -> dict[str, str]:
    """.env.example's settings, as compose reads a .env file (comments and blank lines skipped)."""
    settings = {}
    for line in ENV_EXAMPLE.read_text().splitlines():
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        match = ENV_LINE.match(line)
        assert match, f".env.example: not NAME=value: {line!r}"
        assert match.group(1) not in settings, f".env.example sets {match.group(1)} twice"
        settings[match.group(1)] = match.group(2)
    return settings


def interpolate(text: str, env: Mapping[str, str]) -> str:
    """`text` as compose interpolates it with `env` (`:-` and `:?` treat an empty value as unset)."""
    def replace(match: re.Match[str]) -> str:
        if match.group(0) == "$$":
            return "$"
        name = match.group(1) or match.group(4)
        operator, argument = match.group(2), match.group(3) or ""
        value = env.get(name)
        unset = value is None or (value == "" and operator is not None and operator.startswith(":"))
        if operator in (":-", "-") and unset:
            return argument
        if operator in (":?", "?") and unset:
            raise AssertionError(f"compose would stop: {name}: {argument}")
        return value or ""
    return INTERPOLATION.sub(replace, text)


def interpolated_names() -> set[str]:
    """Every variable compose.yaml interpolates."""
    return {match.group(1) or match.group(4) for match in INTERPOLATION.finditer(COMPOSE.read_text())
            if match.group(0) != "$$"}


def services() -> dict[str, dict[str, Any]]:
    """compose.yaml's services."""
    found: dict[str, dict[str, Any]] = compose()["services"]
    return found


def proxy_services() -> dict[str, dict[str, Any]]:
    """The preview-proxy nodes: the services built from deploy/docker/Dockerfile."""
    return {name: service for name, service in services().items()
            if service.get("build", {}).get("dockerfile") == "deploy/docker/Dockerfile"}


def bind_mounts(service: dict[str, Any]) -> Iterator[tuple[Path, str]]:
    """(host path in the repository, path in the container) of each bind mount (named volumes left out)."""
    for volume in service.get("volumes", []):
        source, target = volume.split(":")[:2]
        if source.startswith((".", "/")):
            yield (COMPOSE_DIR / source).resolve(), target


def mount_target(service: str, source: Path) -> str:
    """Where compose mounts the repository file `source` in `service`'s container."""
    targets = [target for host, target in bind_mounts(services()[service]) if host == source.resolve()]
    assert len(targets) == 1, f"{service} mounts {source} {len(targets)} times"
    return targets[0]


class RecordingEnv(dict[str, str]):
    """An environment that remembers which variables were looked up."""

    def __init__(self, values: Mapping[str, str]) -> None:
        super().__init__(values)
        self.read: set[str] = set()

    def get(self, key: str, default: Any = None) -> Any:
        self.read.add(key)
        return super().get(key, default)

    def __getitem__(self, key: str) -> str:
        self.read.add(key)
        return super().__getitem__(key)

    def __contains__(self, key: object) -> bool:
        self.read.add(str(key))
        return super().__contains__(key)


# ---- compose.yaml and .env.example ----

def test_compose_yaml_has_the_services_and_the_cluster_profile() -> None:
    found = services()
    assert {"preview-proxy", "minio", "minio-setup", "prometheus", "grafana", "nginx"} <= set(found)
    assert len(proxy_services()) == 3
    cluster = {name for name, service in found.items() if CLUSTER_PROFILE in service.get("profiles", [])}
    assert cluster == set(proxy_services()) - {"preview-proxy"} | {"nginx"}
    assert found["preview-proxy"]["environment"]["STORAGE_PROVIDER"] == "minio"


def test_every_image_is_pinned_to_a_tag() -> None:
    settings = env_example()
    for name, service in services().items():
        image = interpolate(str(service.get("image", "")), settings)
        repository, _, tag = image.rpartition(":")
        assert repository and tag and "/" not in tag, f"{name}: image {image!r} has no tag"
        assert tag != "latest", f"{name}: image {image!r} is not pinned"


def test_env_example_lists_exactly_what_compose_interpolates() -> None:
    listed, used = set(env_example()), interpolated_names()
    assert used - listed == set(), "interpolated in compose.yaml but not in .env.example"
    assert listed - used == set(), "in .env.example but compose.yaml never uses them"


def test_env_example_comments_every_setting() -> None:
    """Each setting, or each group of settings on consecutive lines (a key and its salt), has a comment above."""
    lines = ENV_EXAMPLE.read_text().splitlines()
    for i, line in enumerate(lines):
        if ENV_LINE.match(line):
            above = i - 1
            while above >= 0 and ENV_LINE.match(lines[above]):
                above -= 1
            assert above >= 0 and lines[above].startswith("# "), f"{line.split('=')[0]} has no comment above it"


def test_env_example_secrets_are_placeholders() -> None:
    settings = env_example()
    for name in ("MINIO_ROOT_PASSWORD", "STORAGE_SECRET_KEY", "GRAFANA_ADMIN_PASSWORD"):
        assert "change-me" in settings[name], name
    assert settings["IMGPROXY_KEY"] == settings["IMGPROXY_SALT"] == "", "a signing key must not ship in an example"


def test_the_server_reads_every_variable_compose_gives_it() -> None:
    """A node's environment, interpolated from .env.example, is a valid config, and no variable in it is ignored."""
    settings = env_example()
    for name, service in proxy_services().items():
        environment = {key: interpolate(str(value), settings) for key, value in service["environment"].items()}
        recording = RecordingEnv(environment)
        config = Config.from_env(recording)
        assert config.storage.provider == "minio", name
        assert set(environment) - recording.read == set(), f"{name}: set by compose, never read by the server"


def test_server_settings_in_env_example_are_documented_in_the_readme() -> None:
    readme = (REPO / "README.md").read_text()
    passed = {match.group(1) or match.group(4)
              for value in proxy_services()["preview-proxy"]["environment"].values()
              for match in INTERPOLATION.finditer(str(value)) if match.group(0) != "$$"}
    assert passed, "the node's environment interpolates nothing"
    assert {name for name in passed if not re.search(rf"`{name}(?![A-Za-z0-9_])", readme)} == set()


MC_STUB = """#!/bin/sh
# A stand-in for MinIO's client: logs each call. Once attached, the policy shows in the user's info
# (unless MC_HIDES_POLICY is set, as another mc version might print it), and attaching it again fails.
echo "$*" >> "$MC_LOG"
case "$*" in
  "admin user info"*) [ -e "$MC_STATE" ] && [ -z "$MC_HIDES_POLICY" ] && echo "PolicyName: readwrite" ;;
  "admin policy attach"*)
    if [ -e "$MC_STATE" ]; then echo "mc: <ERROR> The specified policy change is already in effect." >&2; exit 1; fi
    touch "$MC_STATE" ;;
esac
exit 0
"""


@pytest.mark.parametrize(("hides_policy", "attaches"), [("", 1), ("1", 2)])
def test_minio_setup_is_safe_to_run_again(tmp_path: Path, hides_policy: str, attaches: int) -> None:
    """The one-shot's script, run twice against a stand-in `mc`: the bucket and the user each time; the
    policy once, or again with its "already in effect" error passed over when the user's info doesn't show it.
    """
    service = services()["minio-setup"]
    assert service["entrypoint"][:1] == ["/bin/sh"]
    settings = env_example()
    script = interpolate(service["command"][0], settings)
    (tmp_path / "mc").write_text(MC_STUB)
    (tmp_path / "mc").chmod(0o755)
    environment = {key: interpolate(str(value), settings) for key, value in service["environment"].items()}
    environment.update(PATH=f"{tmp_path}:/usr/bin:/bin", MC_LOG=str(tmp_path / "calls"),
                       MC_STATE=str(tmp_path / "attached"), MC_HIDES_POLICY=hides_policy)
    for _ in range(2):
        result = subprocess.run(["/bin/sh", *service["entrypoint"][1:], script], env=environment,
                                capture_output=True, text=True, timeout=30)
        assert result.returncode == 0, result.stderr
    calls = (tmp_path / "calls").read_text().splitlines()
    bucket, user = settings["MINIO_BUCKET"], settings["STORAGE_ACCESS_KEY"]
    assert calls.count(f"mb --ignore-existing local/{bucket}") == 2
    assert sum(call.startswith(f"admin user add local {user} ") for call in calls) == 2
    assert calls.count(f"admin policy attach local readwrite --user {user}") == attaches


def test_repository_files_compose_mounts_exist() -> None:
    for name, service in services().items():
        for host, _ in bind_mounts(service):
            assert host.exists(), f"{name} mounts {host}, which does not exist"
            assert REPO in host.parents, f"{name} mounts {host}, outside the repository"


# ---- Prometheus ----

@pytest.mark.skipif(PROMTOOL is None, reason="promtool (Debian's prometheus package) is not installed")
def test_prometheus_config_passes_promtool_with_the_mounted_rules(tmp_path: Path) -> None:
    config = yaml.safe_load(PROMETHEUS.read_text())
    rules_in_container = mount_target("prometheus", RULES)
    assert config["rule_files"] == [rules_in_container]
    assert mount_target("prometheus", PROMETHEUS) == "/etc/prometheus/prometheus.yml"
    # promtool reads the rule files too: point it at the repository's, where compose mounts them from.
    config["rule_files"] = [str(RULES)]
    copy = tmp_path / "prometheus.yml"
    copy.write_text(yaml.safe_dump(config))
    assert PROMTOOL is not None
    result = subprocess.run([PROMTOOL, "check", "config", str(copy)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr


def test_prometheus_scrapes_every_node_under_the_job_the_rules_expect() -> None:
    config = yaml.safe_load(PROMETHEUS.read_text())
    (job,) = config["scrape_configs"]
    assert job["metrics_path"] == "/metrics"
    (dns,) = job["dns_sd_configs"]
    assert set(dns["names"]) == set(proxy_services()) and dns["port"] == PROXY_PORT
    assert f'up{{job="{job["job_name"]}"}}' in RULES.read_text()


# ---- the cluster front ----

def loopback_nginx_conf(directory: Path) -> Path:
    """compose's nginx.conf for nginx -t here: routing.conf from the repository, nodes and paths on loopback.

    Each replacement must apply exactly where expected, so a change this test no longer understands
    fails instead of testing something else.
    """
    text = NGINX_CONF.read_text()

    def once(pattern: str, replacement: str) -> None:
        nonlocal text
        text, count = re.subn(pattern, lambda _: replacement, text, flags=re.MULTILINE)
        assert count == 1, f"nginx.conf: {count} matches for {pattern!r}, expected one"

    once(r"^\s*include " + re.escape(mount_target("nginx", ROUTING)) + ";$", f"    include {ROUTING};")
    once(r"^pid [^;]+;$", f"pid {directory}/nginx.pid;")
    once(r"^error_log [^;]+;$", f"error_log {directory}/error.log;")
    once(r"^http \{$", "http {\n" + "".join(f"    {name}_temp_path {directory}/{name};\n"
                                            for name in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")))
    for port, node in enumerate(sorted(proxy_services()), start=18081):
        once(rf"^(\s*)server {re.escape(node)}:{PROXY_PORT}( [^;]*)?;$", f"        server 127.0.0.1:{port};")
    conf = directory / "nginx.conf"
    conf.write_text(text)
    return conf


def test_nginx_front_hashes_on_the_shared_routing_key() -> None:
    text = NGINX_CONF.read_text()
    assert "hash $preview_proxy_route_key consistent;" in text
    nodes = set(re.findall(rf"^\s*server ([a-z0-9-]+):{PROXY_PORT}\b", text, flags=re.MULTILINE))
    assert nodes == set(proxy_services())
    assert mount_target("nginx", NGINX_CONF) == "/etc/nginx/nginx.conf"


@pytest.mark.skipif(not os.access(NGINX, os.X_OK), reason=f"{NGINX} is not installed (bash deploy/dev.sh setup)")
@pytest.mark.skipif(not ROUTING.exists(), reason="deploy/cluster/routing.conf does not exist yet")
def test_nginx_front_passes_nginx_t_with_routing_conf(tmp_path: Path) -> None:
    conf = loopback_nginx_conf(tmp_path)
    result = subprocess.run([NGINX, "-t", "-c", str(conf), "-p", str(tmp_path), "-e", str(tmp_path / "error.log")],
                            capture_output=True, text=True, timeout=30)
    assert result.returncode == 0, result.stderr
    assert "test is successful" in result.stderr


# ---- Grafana ----

def test_grafana_provisioning_loads_the_mounted_dashboard() -> None:
    provider = yaml.safe_load((PROVISIONING / "dashboards" / "preview-proxy.yaml").read_text())
    (dashboards,) = provider["providers"]
    dashboard_in_container = PurePosixPath(mount_target("grafana", DASHBOARD))
    assert str(dashboard_in_container.parent) == dashboards["options"]["path"]
    environment = services()["grafana"]["environment"]
    assert environment["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"] == str(dashboard_in_container)
    assert mount_target("grafana", PROVISIONING) == "/etc/grafana/provisioning"


def test_grafana_data_source_is_the_prometheus_service() -> None:
    sources = yaml.safe_load((PROVISIONING / "datasources" / "prometheus.yaml").read_text())["datasources"]
    (source,) = sources
    assert source["type"] == "prometheus" and source["isDefault"] is True
    published = services()["prometheus"]["ports"][0]
    assert source["url"] == f"http://prometheus:{published.rsplit(':', 1)[1]}"


# ---- a container engine, where one runs ----

def container_engine_missing() -> str | None:
    """Why `docker compose` can't run here, or None."""
    if DOCKER is None:
        return "the docker CLI is not installed"
    for args, what in ((["compose", "version"], "docker compose (the plugin) is not installed"),
                       (["info"], "no container engine answers (docker info failed)")):
        try:
            if subprocess.run([DOCKER, *args], capture_output=True, timeout=30).returncode != 0:
                return what
        except subprocess.TimeoutExpired:
            return f"docker {' '.join(args)} did not answer in 30 s"
    return None


def test_docker_compose_config_accepts_the_file() -> None:
    missing = container_engine_missing()
    if missing is not None:
        pytest.skip(missing)
    assert DOCKER is not None
    for profile in ([], ["--profile", CLUSTER_PROFILE]):
        result = subprocess.run([DOCKER, "compose", "--env-file", str(ENV_EXAMPLE), "-f", str(COMPOSE), *profile,
                                 "config", "--quiet"], capture_output=True, text=True, timeout=60)
        assert result.returncode == 0, result.stderr

"""The operators' kit (deploy/) agrees with the settings it configures.

No Docker engine runs here, so the compose file is read as data: every ``PEERLEARN_*``
variable must be a real settings key (``config.settings``' own env parsing), each node's
environment (with the image's ``ENV`` lines under it, as in a container) must load and pass
``deploy_checks``, published ports must be the ports the settings and coturn use, and every
long-running service needs a health check (a PeerLearn node's is ``/readyz``).
``config/production.toml.example`` must list every settings key, each with a comment.
"""

from __future__ import annotations

import functools
import ipaddress
import os
import re
import secrets
import shutil
import socket
import subprocess
import time
import venv
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

from config.settings import SHIPPED_DIR, Settings, _env_overrides, deploy_checks, load_settings
from peerlearn_sfu.turn import turn_credentials

ROOT = SHIPPED_DIR.parent
DEPLOY = ROOT / "deploy"
NODES = ("peerlearn-1", "peerlearn-2")

_INTERPOLATION = re.compile(r"\$\{(?P<name>[A-Z0-9_]+)(?:(?P<op>:\?|:-|\?|-)(?P<arg>[^}]*))?\}")


def _interpolate(text: str, values: dict[str, str]) -> str:
    """Compose's ``${VAR}``, ``${VAR:-default}``, ``${VAR:?error}`` (``$$`` = ``$``)."""

    def one(match: re.Match[str]) -> str:
        name, op, arg = match["name"], match["op"], match["arg"]
        if values.get(name):
            return values[name]
        if op in (":?", "?"):
            raise AssertionError(f"${{{name}}} is required: {arg}")
        return arg if op in (":-", "-") else ""

    return _INTERPOLATION.sub(one, text.replace("$$", "\0")).replace("\0", "$")


def _env_example() -> dict[str, str]:
    values = {}
    for line in (DEPLOY / ".env.example").read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            name, _, value = line.partition("=")
            values[name.strip()] = value.strip()
    return values


@functools.cache
def _filled_env() -> dict[str, str]:
    """.env.example with each CHANGE-ME replaced, as an operator would (once per run)."""
    return {
        name: secrets.token_urlsafe(32) if "CHANGE-ME" in value else value
        for name, value in _env_example().items()
    }


def _compose(values: dict[str, str] | None = None) -> dict[str, Any]:
    """compose.yaml as Compose reads it: YAML first, then each string value interpolated."""
    values = dict(_filled_env()) if values is None else values

    def walk(node: Any) -> Any:
        if isinstance(node, dict):
            return {key: walk(value) for key, value in node.items()}
        if isinstance(node, list):
            return [walk(item) for item in node]
        return _interpolate(node, values) if isinstance(node, str) else node

    data = walk(yaml.safe_load((DEPLOY / "compose.yaml").read_text()))
    assert isinstance(data, dict)
    return data


def _image_env() -> dict[str, str]:
    """The Dockerfile's ENV block (the image's own variables, under compose's)."""
    text = (ROOT / "Dockerfile").read_text().replace("\\\n", " ")
    found: dict[str, str] = {}
    for line in text.splitlines():
        if line.startswith("ENV "):
            for pair in line[4:].split():
                name, _, value = pair.partition("=")
                found[name] = value
    assert "PEERLEARN_SERVER__PORT" in found
    return found


def _node_environ(service: dict[str, Any], tmp_path: Path) -> dict[str, str]:
    env = {**_image_env(), **{k: str(v) for k, v in service["environment"].items()}}
    env["PEERLEARN_DATA_DIR"] = str(tmp_path / "data")  # /data is the container's
    return env


def _node_settings(name: str, tmp_path: Path) -> Settings:
    return load_settings(environ=_node_environ(_compose()["services"][name], tmp_path))


def _published(service: dict[str, Any]) -> set[tuple[int, int, str]]:
    """(host port, container port, protocol) of each short-syntax ``ports`` entry."""
    found = set()
    for entry in service.get("ports", []):
        ports, _, proto = str(entry).partition("/")
        host, container = ports.split(":")[-2:]
        found.add((int(host), int(container), proto or "tcp"))
    return found


def _turn_conf() -> dict[str, list[str]]:
    conf: dict[str, list[str]] = {}
    for line in (DEPLOY / "turnserver.conf").read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            key, _, value = line.partition("=")
            conf.setdefault(key.strip(), []).append(value.strip())
    return conf


# --------------------------------------------------------------------------- compose


def test_every_peerlearn_variable_is_a_settings_key() -> None:
    services = _compose()["services"]
    names = set()
    for service in services.values():
        for name, value in service.get("environment", {}).items():
            if name.startswith("PEERLEARN_"):
                names.add(name)
                _env_overrides({name: str(value)})  # ConfigError on an unknown key or typo
    assert "PEERLEARN_CLUSTER__ENABLED" in names and "PEERLEARN_REDIS__URL" in names


def test_every_interpolated_variable_is_in_the_env_example() -> None:
    text = (DEPLOY / "compose.yaml").read_text()
    used = {m["name"] for m in _INTERPOLATION.finditer(text)}
    assert used <= set(_env_example()), used - set(_env_example())
    assert not any(name.startswith("PEERLEARN_") for name in used)  # not mistaken for settings


def test_the_placeholders_are_refused(tmp_path: Path) -> None:
    """Started with .env.example unedited, a node refuses its published secret."""
    service = _compose(_env_example())["services"]["peerlearn-1"]
    with pytest.raises(Exception, match=r"server\.secret_key"):
        load_settings(environ=_node_environ(service, tmp_path))


@pytest.mark.parametrize("name", NODES)
def test_each_node_loads_and_passes_the_deploy_checks(name: str, tmp_path: Path) -> None:
    settings = _node_settings(name, tmp_path)
    assert settings.is_production and settings.cluster.clustered
    assert [c.line() for c in deploy_checks(settings) if c.level == "error"] == []
    # SQLite and a missing Redis are only warnings there; a cluster must have neither.
    assert settings.database_url.startswith("postgresql+asyncpg://")
    assert settings.redis.url
    assert settings.sfu.announced_ip == _env_example()["PUBLIC_IP"]


def test_the_nodes_share_database_redis_and_secret_but_not_ports(tmp_path: Path) -> None:
    one, two = (_node_settings(name, tmp_path) for name in NODES)
    assert one.database_url == two.database_url and one.redis.url == two.redis.url
    assert one.secret_key == two.secret_key and one.ice == two.ice
    assert one.cluster.node_id != two.cluster.node_id
    assert one.sfu.udp_port != two.sfu.udp_port  # same host: each node its own UDP port
    services = _compose()["services"]
    assert urlsplit(one.database_url).hostname in services
    assert urlsplit(one.redis.url or "").hostname in services
    postgres = services["postgres"]["environment"]
    assert f":{postgres['POSTGRES_PASSWORD']}@" in one.database_url
    assert one.redis.url and services["redis"]["environment"]["REDISCLI_AUTH"] in one.redis.url


@pytest.mark.parametrize("name", NODES)
def test_published_ports_match_the_settings(name: str, tmp_path: Path) -> None:
    service = _compose()["services"][name]
    settings = _node_settings(name, tmp_path)
    assert settings.sfu.udp_port > 0  # single-port mode: one port to publish
    # 1:1: the ICE candidates carry the container's port number, so the host's must match.
    udp = settings.sfu.udp_port
    assert _published(service) == {(udp, udp, "udp")}
    # HTTP stays inside the network; the health check and Caddy use the configured port.
    assert f"127.0.0.1:{settings.server.port}/readyz" in " ".join(service["healthcheck"]["test"])
    caddyfile = (DEPLOY / "Caddyfile").read_text()
    assert f"{name}:{settings.server.port}" in caddyfile


def test_caddy_is_the_trusted_proxy_and_serves_tls(tmp_path: Path) -> None:
    services = _compose()["services"]
    caddy = services["caddy"]
    address = ipaddress.ip_address(caddy["networks"]["backend"]["ipv4_address"])
    for name in NODES:
        networks = _node_settings(name, tmp_path).server.proxy_networks
        assert any(address in network for network in networks)
    assert {(443, 443, "tcp"), (80, 80, "tcp")} <= _published(caddy)
    public_url = _node_settings("peerlearn-1", tmp_path).server.public_url or ""
    assert public_url.startswith("https://") and urlsplit(public_url).port is None  # 443
    subnet = ipaddress.ip_network(_compose()["networks"]["backend"]["ipam"]["config"][0]["subnet"])
    for name in (*NODES, "caddy"):
        assert ipaddress.ip_address(services[name]["networks"]["backend"]["ipv4_address"]) in subnet
    caddyfile = (DEPLOY / "Caddyfile").read_text()
    assert "{$DOMAIN} {" in caddyfile  # a site address: Caddy gets and renews the certificate
    assert re.search(r"health_uri\s+/readyz", caddyfile)
    assert re.search(r"respond\s+/metrics\s+404", caddyfile)


def test_turn_urls_match_coturn(tmp_path: Path) -> None:
    settings = _node_settings("peerlearn-1", tmp_path)
    conf = _turn_conf()
    port = int(conf["listening-port"][0])
    assert settings.ice.turn_urls
    for url in (*settings.ice.turn_urls, *settings.ice.stun_urls):
        host_port = url.split(":", 1)[1].split("?")[0]
        assert host_port == f"{_env_example()['DOMAIN']}:{port}", url
    assert {"udp", "tcp"} == {url.split("transport=")[1] for url in settings.ice.turn_urls}
    assert "use-auth-secret" in conf
    coturn = _compose()["services"]["coturn"]
    assert coturn["network_mode"] == "host"  # its ports are the host's: nothing to publish
    assert f"--static-auth-secret={settings.ice.turn_secret}" in coturn["command"]
    assert f"--external-ip={settings.sfu.announced_ip}" in coturn["command"]
    # The SFUs' host candidates are on the compose network: coturn may relay there.
    subnet = ipaddress.ip_network(_compose()["networks"]["backend"]["ipam"]["config"][0]["subnet"])
    low, high = conf["allowed-peer-ip"][0].split("-")
    assert ipaddress.ip_address(low) == subnet[0] and ipaddress.ip_address(high) == subnet[-1]
    assert 1024 < int(conf["min-port"][0]) <= int(conf["max-port"][0]) <= 65535


#: the service attributes of the Compose specification this kit uses (a typo is not one)
SERVICE_KEYS = frozenset(
    {"build", "image", "command", "restart", "environment", "depends_on", "volumes",
     "healthcheck", "stop_grace_period", "ports", "networks", "network_mode"}
)  # fmt: skip


def test_services_use_only_known_attributes() -> None:
    services = _compose()["services"]
    for name, service in services.items():
        assert set(service) <= SERVICE_KEYS, (name, set(service) - SERVICE_KEYS)
        assert set(service.get("healthcheck", {})) <= {
            "test", "interval", "timeout", "retries", "start_period"
        }  # fmt: skip
        for dependency in service.get("depends_on", {}):
            assert dependency in services, (name, dependency)
    for service in services.values():
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith("./"):  # relative to compose.yaml, as Compose reads it
                assert (DEPLOY / source).is_file(), volume
            else:
                assert source in _compose()["volumes"], volume


def test_every_service_has_a_health_check() -> None:
    services = _compose()["services"]
    one_shot = {
        dependency
        for service in services.values()
        for dependency, how in (service.get("depends_on") or {}).items()
        if isinstance(how, dict) and how.get("condition") == "service_completed_successfully"
    }
    assert one_shot == {"migrate"} and services["migrate"]["restart"] == "no"
    assert services["migrate"]["command"] == ["migrate"]
    for name, service in services.items():
        if name not in one_shot:
            assert service.get("healthcheck", {}).get("test"), f"{name} has no health check"
    for name in NODES:
        assert "/readyz" in " ".join(services[name]["healthcheck"]["test"])
        for needed in ("postgres", "redis", "migrate"):
            assert needed in services[name]["depends_on"]


def test_the_readme_names_every_port_to_open(tmp_path: Path) -> None:
    """The README's firewall list is the kit's: each node's UDP port, coturn's, Caddy's."""
    readme = (ROOT / "README.md").read_text()
    section = readme.split("## Operators' kit", 1)[1].split("\n## ", 1)[0]
    for name in NODES:
        assert f"{_node_settings(name, tmp_path).sfu.udp_port}/udp" in section
    conf = _turn_conf()
    assert f"{conf['listening-port'][0]}/udp" in section
    assert f"{conf['min-port'][0]}-{conf['max-port'][0]}/udp" in section
    assert "443/tcp" in section


# --------------------------------------------------------------------------- production example

_KEY_LINE = re.compile(r"^(?:#\s*)?(?P<key>[a-z_]+)\s*=(?P<rest>.*)$")


def _example_keys() -> dict[str, dict[str, str]]:
    """section -> key -> the rest of its line, set or commented out."""
    found: dict[str, dict[str, str]] = {}
    section = ""
    for line in (SHIPPED_DIR / "production.toml.example").read_text().splitlines():
        if header := re.match(r"^\[(\w+)\]", line):
            section = header[1]
            found[section] = {}
        elif section and (match := _KEY_LINE.match(line.strip())):
            found[section].setdefault(match["key"], match["rest"])
    return found


def test_the_production_example_lists_every_key_with_a_comment() -> None:
    example = _example_keys()
    for section, field in Settings.model_fields.items():
        model = field.annotation
        assert isinstance(model, type)
        assert section in example, f"[{section}] missing"
        for key in model.model_fields:  # type: ignore[attr-defined]
            assert key in example[section], f"{section}.{key} missing"
            assert "#" in example[section][key], f"{section}.{key} has no comment"
        unknown = set(example[section]) - set(model.model_fields)  # type: ignore[attr-defined]
        assert not unknown, f"[{section}] unknown keys {unknown}"


def test_the_production_example_with_its_commented_keys_on_still_loads(tmp_path: Path) -> None:
    """Uncommenting a key's line keeps the default it shows (no stale value in a comment)."""
    text = (SHIPPED_DIR / "production.toml.example").read_text()
    lines = []
    for line in text.splitlines():
        match = _KEY_LINE.match(line.strip())
        if line.startswith("#") and match and match["key"] not in ("token", "file_dir"):
            line = line.lstrip("# ")
        lines.append(line)
    path = tmp_path / "all.toml"
    path.write_text("\n".join(lines) + "\n")
    settings = load_settings(
        path,
        environ={
            "PEERLEARN_DATA_DIR": str(tmp_path / "data"),
            "PEERLEARN_SERVER__SECRET_KEY": secrets.token_urlsafe(48),
            "PEERLEARN_ICE__TURN_SECRET": secrets.token_urlsafe(32),
            "PEERLEARN_EMAIL__SMTP_PASSWORD": secrets.token_urlsafe(16),
        },
    )
    defaults = Settings()
    for section in ("sessions", "uploads", "recommender"):
        assert getattr(settings, section) == getattr(defaults, section), section
    shown = settings.auth.model_copy(update={"require_verified_email": None})
    assert shown == defaults.auth  # only require_verified_email is set, to its production value
    assert [c.line() for c in deploy_checks(settings) if c.level == "error"] == []


# --------------------------------------------------------------------------- the image's install


def _build_stage_copies() -> list[str]:
    """What the Dockerfile's build stage copies into /src (``COPY a b ./`` or ``COPY d ./d``)."""
    text = (ROOT / "Dockerfile").read_text()
    build = text.split(" AS build", 1)[1].split(" AS runtime", 1)[0]
    sources = []
    for line in build.splitlines():
        if line.startswith("COPY ") and "--from" not in line:
            sources += line.split()[1:-1]
    return sources


def _run(*args: str | Path, cwd: Path, env: dict[str, str]) -> str:
    done = subprocess.run(
        [str(a) for a in args], cwd=cwd, env=env, capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, f"{args}: {done.returncode}\n{done.stdout}\n{done.stderr}"
    return done.stdout


@pytest.mark.slow
def test_the_images_install_steps_work_in_a_fresh_virtualenv(tmp_path: Path) -> None:
    """The build stage's ``pip wheel -c constraints.txt`` and the runtime stage's
    ``pip install --no-index`` from those wheels, in a new virtualenv, on a copy of exactly
    what the build stage copies; then the installed command runs from outside the source.

    Differences from the image, on purpose: pip's cache and this machine's package index are
    used (``--no-cache-dir`` only keeps the image small), and the base Python is this one.
    """
    src = tmp_path / "src"
    src.mkdir()
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")  # as .dockerignore
    for name in _build_stage_copies():
        if (ROOT / name).is_dir():
            shutil.copytree(ROOT / name, src / name, ignore=ignore)
        else:
            shutil.copy2(ROOT / name, src / name)
    assert {"constraints.txt", "setup.cfg", "web", "config"} <= {p.name for p in src.iterdir()}

    venv_dir = tmp_path / "venv"
    venv.create(venv_dir, with_pip=True, clear=True)
    python = venv_dir / "bin" / "python"
    # Nothing of this checkout may leak in: no PYTHONPATH, no PEERLEARN_* of the caller.
    env = {
        k: v for k, v in os.environ.items() if k != "PYTHONPATH" and not k.startswith("PEERLEARN_")
    }
    env["PATH"] = f"{venv_dir / 'bin'}{os.pathsep}{env.get('PATH', '')}"
    wheels = tmp_path / "wheels"
    _run(python, "-m", "pip", "wheel", "-q", "-c", "constraints.txt", "--wheel-dir", wheels, ".",
         cwd=src, env=env)  # fmt: skip
    _run(python, "-m", "pip", "install", "-q", "--no-index", "--find-links", wheels, "peerlearn",
         cwd=tmp_path, env=env)  # fmt: skip

    # Installed, not imported from the source: its package data came along.
    where = _run(
        python,
        "-c",
        "import pathlib, web, config, control.migrations as m; "
        "print(web.__file__); "
        "assert (pathlib.Path(web.__file__).parent / 'templates').is_dir(); "
        "assert (pathlib.Path(config.__file__).parent / 'default.toml').is_file(); "
        "assert (pathlib.Path(list(m.__path__)[0]) / 'versions').is_dir()",
        cwd=tmp_path,
        env=env,
    )
    assert str(venv_dir) in where and str(ROOT) not in where
    peerlearn = venv_dir / "bin" / "peerlearn"
    # A compose node's settings pass the production checks in the installed command...
    node = {**env, **_node_environ(_compose()["services"]["peerlearn-1"], tmp_path)}
    assert "0 error(s)" in _run(peerlearn, "check", "--deploy", cwd=tmp_path, env=node)
    # ...and the migrations run (SQLite here: PostgreSQL is the compose file's).
    _run(peerlearn, "migrate", cwd=tmp_path, env={**env, "PEERLEARN_DATA_DIR": str(tmp_path / "d")})
    assert (tmp_path / "d" / "peerlearn.db").is_file()


# --------------------------------------------------------------------------- coturn, for real


def _free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _uclient(
    port: int, username: str, credential: str, peer: str
) -> subprocess.CompletedProcess[str]:
    """One TURN allocation, a permission and a channel bind for ``peer`` (no packets: a
    peer that never answers would only add coturn's wait for them)."""
    return subprocess.run(
        ["turnutils_uclient", "-n", "0", "-c", "-u", username, "-w", credential,
         "-p", str(port), "-e", peer, "-r", "40000", "127.0.0.1"],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip


@pytest.mark.slow
@pytest.mark.skipif(
    not (shutil.which("turnserver") and shutil.which("turnutils_uclient")),
    reason="coturn is not installed",
)
def test_coturn_takes_the_kits_config_and_peerlearns_credentials(tmp_path: Path) -> None:
    """deploy/turnserver.conf with the compose file's coturn arguments, on loopback: the
    compose health check passes, PeerLearn's TURN REST credentials allocate, a wrong secret
    does not, and relaying reaches the compose network but not other private networks."""
    settings = _node_settings("peerlearn-1", tmp_path)
    coturn = _compose()["services"]["coturn"]
    port = _free_udp_port()
    # The kit's arguments, then this test's: loopback and a free port instead of the host's.
    args = [a.replace("/etc/coturn/turnserver.conf", str(DEPLOY / "turnserver.conf"))
            for a in coturn["command"]]  # fmt: skip
    args += ["--listening-ip=127.0.0.1", "--relay-ip=127.0.0.1", f"--listening-port={port}",
             f"--pidfile={tmp_path / 'turn.pid'}"]  # fmt: skip
    health = [str(port) if a == _turn_conf()["listening-port"][0] else a
              for a in coturn["healthcheck"]["test"][1:]]  # fmt: skip
    log = tmp_path / "turnserver.log"  # a file, not a pipe nobody reads while it runs
    with log.open("w") as out:
        server = subprocess.Popen(["turnserver", *args], stdout=out, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 30
        while True:  # progress-based: the health check passes once coturn answers STUN
            assert server.poll() is None, log.read_text()[-2000:]
            try:  # a probe before coturn listens waits forever: compose's timeout ends it
                probe = subprocess.run(health, capture_output=True, timeout=5, check=False)
                if probe.returncode == 0:
                    break
            except subprocess.TimeoutExpired:
                pass
            assert time.monotonic() < deadline, "coturn never answered the health check"
            time.sleep(0.2)
        assert settings.ice.turn_secret
        node = _compose()["services"]["peerlearn-1"]["networks"]["backend"]["ipv4_address"]
        good = turn_credentials(settings.ice.turn_secret, 7, settings.ice.turn_ttl_s)
        done = _uclient(port, *good, peer=node)
        assert done.returncode == 0, done.stdout[-2000:]
        done = _uclient(port, *good, peer=settings.sfu.announced_ip or "")
        assert done.returncode == 0, done.stdout[-2000:]
        denied = _uclient(port, *good, peer="10.0.0.5")
        assert denied.returncode != 0 and "403" in denied.stdout
        wrong = turn_credentials("not-" + settings.ice.turn_secret, 7, settings.ice.turn_ttl_s)
        refused = _uclient(port, *wrong, peer=node)
        assert refused.returncode != 0 and "Cannot complete Allocation" in refused.stdout
    finally:
        server.terminate()
        server.wait(timeout=30)

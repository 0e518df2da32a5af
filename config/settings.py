"""Typed settings: a TOML file plus ``PEERLEARN_*`` environment overrides.

Every value is validated at start-up; any problem raises :class:`ConfigError` whose
message is one line naming the offending key, so an operator sees exactly what to fix.

Environment overrides use ``PEERLEARN_<SECTION>__<KEY>`` (double underscore between
section and key), e.g. ``PEERLEARN_SERVER__PORT=9000``.  Lists are given as JSON or as
comma-separated text.  ``PEERLEARN_DATA_DIR`` and ``PEERLEARN_CONFIG`` are shortcuts for
the data folder and the config file.
"""

from __future__ import annotations

import functools
import ipaddress
import json
import os
import secrets
import tomllib
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from control.limits import CHAT_MAX_CHARS, MAX_PARTICIPANTS

ENV_PREFIX = "PEERLEARN_"
SHIPPED_DIR = Path(__file__).resolve().parent
DEFAULT_CONFIG_FILE = SHIPPED_DIR / "default.toml"
SECRET_FILE_NAME = "secret_key"
MIN_SECRET_LENGTH = 32
PLACEHOLDER_MARK = "CHANGE-ME"
# Variables that are not settings but share the prefix (shortcuts, CLI and test helpers).
NON_SETTING_VARIABLES = frozenset({"CONFIG", "DATA_DIR", "ADMIN_PASSWORD"})

Port = Annotated[int, Field(ge=1, le=65535)]


class ConfigError(Exception):
    """A settings problem, described in one line that names the key."""


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, validate_default=True)


def _check_url(value: str, schemes: tuple[str, ...], *, need_host: bool = True) -> str:
    parts = urlsplit(value)
    if parts.scheme not in schemes:
        allowed = ", ".join(s + ":" for s in schemes)
        raise ValueError(f"must be a URL starting with one of {allowed}")
    if need_host and not parts.netloc:
        raise ValueError("malformed URL: no host")
    return value


def _check_secret(value: str) -> str:
    if len(value) < MIN_SECRET_LENGTH:
        raise ValueError(f"must be at least {MIN_SECRET_LENGTH} characters")
    if PLACEHOLDER_MARK in value:
        # production.toml.example ships placeholders; running with one would be a known secret.
        raise ValueError("still the example placeholder: generate a random secret")
    return value


class ServerSettings(_Section):
    host: str = "127.0.0.1"
    port: Port = 8080
    mode: Literal["development", "production"] = "development"
    data_dir: Path = Path("peerlearn-data")
    secret_key: str | None = None
    public_url: str | None = None
    allowed_origins: tuple[str, ...] = ()
    #: extra Host names served besides public_url's (production answers others with 400)
    allowed_hosts: tuple[str, ...] = ()
    cookie_secure: bool = False
    #: addresses/CIDRs of reverse proxies whose X-Forwarded-For / -Proto are believed
    trusted_proxies: tuple[str, ...] = ()
    #: legacy switch: true with no trusted_proxies trusts a proxy on loopback only
    trust_proxy_headers: bool = False
    #: the public catalogue (listings, anonymous session detail, landing blocks) served from
    #: memory until the next catalogue event, or for catalogue_cache_seconds at most
    catalogue_cache: bool = True
    catalogue_cache_seconds: float = Field(default=10.0, gt=0, le=3600)

    @field_validator("allowed_hosts")
    @classmethod
    def _hosts(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        hosts = tuple(h.strip().lower() for h in v if h.strip())
        for host in hosts:
            if "/" in host or " " in host or "@" in host:
                raise ValueError(f"not a host name: {host!r} (give names like learn.example.org)")
        return hosts

    @field_validator("trusted_proxies")
    @classmethod
    def _proxies(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        for item in v:
            try:
                ipaddress.ip_network(item.strip(), strict=False)
            except ValueError:
                raise ValueError(f"not an IP address or CIDR: {item!r}") from None
        return tuple(item.strip() for item in v)

    @functools.cached_property  # read per request behind a proxy; settings are frozen
    def proxy_networks(self) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
        """The trusted proxies as networks (loopback for the legacy switch alone)."""
        items = self.trusted_proxies or (
            ("127.0.0.0/8", "::1/128") if self.trust_proxy_headers else ()
        )
        return tuple(ipaddress.ip_network(item, strict=False) for item in items)

    @field_validator("public_url")
    @classmethod
    def _public_url(cls, v: str | None) -> str | None:
        return None if v in (None, "") else _check_url(v.rstrip("/"), ("http", "https"))

    @field_validator("allowed_origins")
    @classmethod
    def _origins(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        return tuple(_check_url(o.rstrip("/"), ("http", "https")) for o in v)

    @field_validator("secret_key")
    @classmethod
    def _secret(cls, v: str | None) -> str | None:
        if v in (None, ""):
            return None
        return _check_secret(v)


class DatabaseSettings(_Section):
    url: str = ""
    echo: bool = False
    pool_size: int = Field(default=10, ge=1, le=200)

    @field_validator("url")
    @classmethod
    def _url(cls, v: str) -> str:
        if not v:
            return v
        if v.startswith("postgresql://") or v.startswith("postgres://"):
            v = "postgresql+asyncpg://" + v.split("://", 1)[1]
        if v.startswith("sqlite+aiosqlite:"):
            if not v.startswith("sqlite+aiosqlite:///"):
                raise ValueError("malformed URL: use sqlite+aiosqlite:///path/to/file.db")
            return v
        if urlsplit(v).scheme != "postgresql+asyncpg":
            raise ValueError(
                "must be postgresql://user@host/db (or postgresql+asyncpg://...) or "
                "sqlite+aiosqlite:///path/to/file.db"
            )
        return _check_url(v, ("postgresql+asyncpg",))


class RedisSettings(_Section):
    url: str | None = None

    @field_validator("url")
    @classmethod
    def _url(cls, v: str | None) -> str | None:
        return None if v in (None, "") else _check_url(v, ("redis", "rediss", "unix"))


class AuthSettings(_Section):
    token_ttl_minutes: int = Field(default=60 * 12, ge=5, le=60 * 24 * 30)
    #: failed logins for one account from one source (address, or IPv6 /64) per window
    login_max_failures_per_account: int = Field(default=5, ge=1, le=1000)
    login_max_attempts_per_ip: int = Field(default=30, ge=1, le=100000)
    login_window_seconds: int = Field(default=300, ge=10, le=86400)
    register_max_per_ip_per_hour: int = Field(default=10, ge=1, le=100000)
    mail_max_per_ip_per_hour: int = Field(default=10, ge=1, le=100000)
    email_token_ttl_minutes: int = Field(default=60 * 24, ge=5, le=60 * 24 * 14)
    reset_token_ttl_minutes: int = Field(default=60, ge=5, le=60 * 24)
    min_password_length: int = Field(default=12, ge=8, le=128)
    #: zxcvbn score (0-4) a new password must reach
    min_password_score: int = Field(default=3, ge=0, le=4)
    #: unverified accounts may browse but not book or rate; unset = on in production only
    require_verified_email: bool | None = None


class EmailSettings(_Section):
    backend: Literal["console", "file", "smtp"] = "console"
    from_address: str = "PeerLearn <no-reply@localhost>"
    file_dir: Path | None = None
    smtp_host: str = "127.0.0.1"
    smtp_port: Port = 25
    smtp_username: str | None = None
    smtp_password: str | None = None
    smtp_starttls: bool = False
    smtp_timeout_s: float = Field(default=10.0, gt=0, le=120)


class SessionSettings(_Section):
    #: seats of a session; the database allows at most ``control.limits.MAX_PARTICIPANTS``
    max_participants: int = Field(default=MAX_PARTICIPANTS, ge=1, le=MAX_PARTICIPANTS)
    min_duration_minutes: int = Field(default=15, ge=1)
    max_duration_minutes: int = Field(default=480, le=24 * 60)
    start_window_minutes: int = Field(default=30, ge=0, le=24 * 60)
    reminder_minutes: int = Field(default=15, ge=1, le=24 * 60)
    reminder_check_seconds: float = Field(default=30.0, gt=0, le=3600)
    #: a live session nobody ended is ended this long after its planned end
    auto_end_grace_minutes: int = Field(default=30, ge=0, le=24 * 60)
    #: live sessions (open rooms) one mentor may hold at once
    max_live_per_mentor: int = Field(default=2, ge=1, le=100)


class PaymentSettings(_Section):
    provider: Literal["manual"] = "manual"
    hold_minutes: int = Field(default=30, ge=1, le=7 * 24 * 60)
    currency: str = Field(default="USD", pattern=r"^[A-Z]{3}$")


class UploadSettings(_Section):
    max_image_bytes: int = Field(default=2 * 1024 * 1024, ge=1024, le=50 * 1024 * 1024)


class SfuSettings(_Section):
    #: single-port mode: all media of the node on this UDP port (0 = range mode below)
    udp_port: int = Field(default=40000, ge=0, le=65535)
    udp_port_min: Port = 40000
    udp_port_max: Port = 40199
    #: range mode only: UDP sockets one room / the whole server may hold (0 = a full
    #: room's need / the whole range)
    max_ports_per_room: int = Field(default=0, ge=0, le=65535)
    max_ports_per_server: int = Field(default=0, ge=0, le=65535)
    announced_ip: str | None = None
    interfaces: tuple[str, ...] = ()
    max_room_size: int = Field(default=11, ge=2, le=12)
    keyframe_min_interval_ms: int = Field(default=500, ge=50, le=10000)
    video_max_bitrate_kbps: int = Field(default=800, ge=50, le=20000)
    #: the chat history stores at most ``control.limits.CHAT_MAX_CHARS`` per message
    chat_max_chars: int = Field(default=CHAT_MAX_CHARS, ge=1, le=CHAT_MAX_CHARS)
    chat_rate_count: int = Field(default=5, ge=1, le=1000)
    chat_rate_window_s: float = Field(default=5.0, gt=0, le=3600)
    active_speaker_interval_ms: int = Field(default=300, ge=300, le=10000)
    stats_log_interval_s: float = Field(default=30.0, gt=0)
    #: quotas and bounds against hostile clients (docs/sfu.md, "Limits")
    max_participants_per_server: int = Field(default=200, ge=1, le=100_000)
    max_rooms_per_user: int = Field(default=2, ge=1, le=100)
    outbox_max_bytes: int = Field(default=1024 * 1024, ge=64 * 1024, le=64 * 1024 * 1024)
    outbox_max_stall_s: float = Field(default=10.0, gt=0, le=300)
    state_update_interval_ms: int = Field(default=250, ge=0, le=10_000)
    #: "rtp": packets forwarded as they arrive (the default); "frame": the previous
    #: frame-level path, kept for one release to compare (docs/sfu.md, "Media path")
    forwarding: Literal["rtp", "frame"] = "rtp"

    @field_validator("announced_ip")
    @classmethod
    def _ip(cls, v: str | None) -> str | None:
        if v in (None, ""):
            return None
        ipaddress.ip_address(v)
        return v

    @model_validator(mode="after")
    def _range(self) -> SfuSettings:
        if self.udp_port_min > self.udp_port_max:
            raise ValueError("udp_port_min must not exceed udp_port_max")
        return self


class IceSettings(_Section):
    stun_urls: tuple[str, ...] = ()
    turn_urls: tuple[str, ...] = ()
    turn_secret: str | None = None
    turn_ttl_s: int = Field(default=3600, ge=60, le=7 * 86400)

    @field_validator("stun_urls")
    @classmethod
    def _stun(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        return tuple(_check_url(u, ("stun", "stuns"), need_host=False) for u in v)

    @field_validator("turn_urls")
    @classmethod
    def _turn(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        return tuple(_check_url(u, ("turn", "turns"), need_host=False) for u in v)

    @field_validator("turn_secret")
    @classmethod
    def _turn_secret(cls, v: str | None) -> str | None:
        if v in (None, ""):
            return None
        if PLACEHOLDER_MARK in v:
            raise ValueError("still the example placeholder: use coturn's static-auth-secret")
        return v

    @model_validator(mode="after")
    def _secret_needed(self) -> IceSettings:
        if self.turn_urls and not self.turn_secret:
            raise ValueError("turn_secret is required when turn_urls are set")
        return self


class RecommenderSettings(_Section):
    content_weight: float = Field(default=0.5, ge=0, le=10)
    collaborative_weight: float = Field(default=0.3, ge=0, le=10)
    popularity_weight: float = Field(default=0.2, ge=0, le=10)
    collaborative_full_history: int = Field(default=20, ge=1)
    half_life_days: float = Field(default=7.0, gt=0)
    max_per_mentor: int = Field(default=3, ge=1, le=10)
    refit_interval_s: float = Field(default=300.0, gt=0)
    refit_after_interactions: int = Field(default=50, ge=1)


class JobsSettings(_Section):
    #: who runs a background job once per cluster: ``auto`` = Redis if ``[redis] url`` is
    #: set, else a PostgreSQL advisory lock, else (SQLite, one process) nobody needs to ask
    lock: Literal["auto", "redis", "postgres", "none"] = "auto"
    #: a holder that stops renewing (died) frees its jobs after this long
    lock_ttl_s: float = Field(default=15.0, ge=1, le=600)


class MetricsSettings(_Section):
    #: serve Prometheus ``/metrics``
    enabled: bool = True
    #: when set, ``/metrics`` wants ``Authorization: Bearer <token>``; unset, it answers only
    #: clients on the loopback address (a scraper on the same machine or a sidecar)
    token: str | None = Field(default=None, min_length=16)


class LoggingSettings(_Section):
    #: ``text`` (one readable line) or ``json`` (one object per line, for log shippers)
    format: Literal["text", "json"] = "text"


class ClusterSettings(_Section):
    """Workers and nodes sharing rooms over Redis (docs/operations.md, "Workers and nodes")."""

    #: this process is one node of several (several machines); ``--workers`` > 1 implies it
    enabled: bool = False
    #: worker processes ``peerlearn serve`` runs on this machine ("auto" = one per core)
    workers: int | Literal["auto"] = 1
    #: set by the supervisor for each worker: its SFU's UDP port is [sfu] udp_port + this
    worker_index: int = Field(default=0, ge=0, le=1024)
    #: empty: ``<hostname>-w<index>-<random>``, new on every start
    node_id: str = Field(default="", max_length=100, pattern=r"^[A-Za-z0-9._:-]*$")
    heartbeat_s: float = Field(default=1.0, gt=0, le=60)
    #: a node (and its room claims) that stops beating is gone after this long
    node_ttl_s: float = Field(default=5.0, gt=0, le=600)
    #: relayed signaling: entries a reader may be behind before the writer waits
    relay_backlog: int = Field(default=256, ge=8, le=100_000)
    #: hard cap of one participant's relay stream (XADD MAXLEN ~)
    relay_maxlen: int = Field(default=4096, ge=64, le=1_000_000)
    #: SIGTERM: rooms handed over and requests finished within this long, then exit
    drain_grace_s: float = Field(default=10.0, ge=0, le=600)

    @field_validator("workers")
    @classmethod
    def _workers(cls, v: int | str) -> int | str:
        if isinstance(v, int) and not 1 <= v <= 256:
            raise ValueError('must be 1-256 or "auto"')
        return v

    @model_validator(mode="after")
    def _ttl(self) -> ClusterSettings:
        if self.node_ttl_s < 2 * self.heartbeat_s:
            raise ValueError("node_ttl_s must be at least twice heartbeat_s")
        return self

    @property
    def worker_count(self) -> int:
        return (os.cpu_count() or 1) if self.workers == "auto" else int(self.workers)

    @property
    def clustered(self) -> bool:
        """Rooms are placed across nodes (Redis required)."""
        return self.enabled or self.worker_count > 1


class Settings(_Section):
    server: ServerSettings = ServerSettings()
    database: DatabaseSettings = DatabaseSettings()
    redis: RedisSettings = RedisSettings()
    auth: AuthSettings = AuthSettings()
    email: EmailSettings = EmailSettings()
    sessions: SessionSettings = SessionSettings()
    payments: PaymentSettings = PaymentSettings()
    uploads: UploadSettings = UploadSettings()
    sfu: SfuSettings = SfuSettings()
    ice: IceSettings = IceSettings()
    recommender: RecommenderSettings = RecommenderSettings()
    jobs: JobsSettings = JobsSettings()
    metrics: MetricsSettings = MetricsSettings()
    logging: LoggingSettings = LoggingSettings()
    cluster: ClusterSettings = ClusterSettings()

    @property
    def is_production(self) -> bool:
        return self.server.mode == "production"

    @property
    def require_verified_email(self) -> bool:
        configured = self.auth.require_verified_email
        return self.is_production if configured is None else configured

    @property
    def database_url(self) -> str:
        if self.database.url:
            return self.database.url
        return f"sqlite+aiosqlite:///{(self.server.data_dir / 'peerlearn.db').resolve()}"

    @property
    def secret_key(self) -> str:
        assert self.server.secret_key, "settings were not finalised by load_settings()"
        return self.server.secret_key

    def public_summary(self) -> dict[str, Any]:
        """Settings in force with secrets masked (shown to admins)."""
        data = self.model_dump(mode="json")
        for section, key in (
            ("server", "secret_key"),
            ("ice", "turn_secret"),
            ("email", "smtp_password"),
            ("metrics", "token"),
        ):
            if data[section].get(key):
                data[section][key] = "********"
        for section, key in (("database", "url"), ("redis", "url")):
            if data[section].get(key):
                data[section][key] = _mask_url_password(data[section][key])
        return data


def _mask_url_password(url: str) -> str:
    try:
        password = urlsplit(url).password
    except ValueError:  # e.g. an invalid port: show nothing of the credentials part
        return url.rsplit("@", 1)[-1]
    return url.replace(f":{password}@", ":********@") if password else url


# --------------------------------------------------------------------------- loading


def _parse_env_value(raw: str) -> Any:
    text = raw.strip()
    if text[:1] in "[{":
        try:
            return json.loads(text)
        except json.JSONDecodeError:
            pass
    return raw


def _env_overrides(environ: dict[str, str]) -> dict[str, dict[str, Any]]:
    sections = set(Settings.model_fields)
    overrides: dict[str, dict[str, Any]] = {}
    if environ.get(ENV_PREFIX + "DATA_DIR"):
        overrides.setdefault("server", {})["data_dir"] = environ[ENV_PREFIX + "DATA_DIR"]
    for name, raw in environ.items():
        if not name.startswith(ENV_PREFIX):
            continue
        if "__" not in name:
            _check_single_underscore(name, sections)
            continue
        section, _, key = name[len(ENV_PREFIX) :].lower().partition("__")
        if section not in sections:
            raise ConfigError(f"config error: {name}: unknown section '{section}'")
        model = Settings.model_fields[section].annotation
        assert isinstance(model, type) and issubclass(model, BaseModel)  # every section is one
        fields = model.model_fields
        if key not in fields:
            raise ConfigError(f"config error: {name}: unknown key '{section}.{key}'")
        value = _parse_env_value(raw)
        annotation = str(fields[key].annotation)
        if isinstance(value, str) and "tuple" in annotation:
            value = [item.strip() for item in value.split(",") if item.strip()]
        overrides.setdefault(section, {})[key] = value
    return overrides


def _check_single_underscore(name: str, sections: set[str]) -> None:
    """``PEERLEARN_SERVER_PORT`` is a typo of ``PEERLEARN_SERVER__PORT``: refuse it."""
    rest = name[len(ENV_PREFIX) :]
    if rest in NON_SETTING_VARIABLES:
        return
    section, _, key = rest.lower().partition("_")
    if section in sections and key:
        raise ConfigError(
            f"config error: {name}: unknown variable; settings take a double underscore "
            f"between section and key: {ENV_PREFIX}{section.upper()}__{key.upper()}"
        )


def _merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def _first_error(exc: ValidationError) -> str:
    err = exc.errors()[0]
    key = ".".join(str(p) for p in err["loc"]) or "settings"
    message = err["msg"].removeprefix("Value error, ")
    if err["type"] == "extra_forbidden":
        message = "unknown key"
    value = err.get("input")
    secret = any(word in key for word in ("secret", "password"))
    hide = secret or isinstance(value, dict) or err["type"] == "extra_forbidden"
    if isinstance(value, str) and "@" in value:
        value = _mask_url_password(value)
    shown = "" if hide else f" (got {value!r})"
    return f"config error: {key}: {message}{shown}"


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as fh:
            return tomllib.load(fh)
    except FileNotFoundError:
        raise ConfigError(f"config error: {path}: file not found") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"config error: {path}: invalid TOML ({exc})") from None


def _ensure_secret(settings: Settings) -> Settings:
    if settings.server.secret_key:
        return settings
    if settings.is_production:
        raise ConfigError(
            "config error: server.secret_key: required in production mode "
            "(set it in the config file or PEERLEARN_SERVER__SECRET_KEY)"
        )
    data_dir = settings.server.data_dir
    data_dir.mkdir(parents=True, exist_ok=True)
    secret_file = data_dir / SECRET_FILE_NAME
    if not secret_file.exists():
        # Written once; every later start of this data folder reuses it so tokens survive restarts.
        fd = os.open(secret_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(secrets.token_urlsafe(48))
    secret = secret_file.read_text().strip()
    if len(secret) < MIN_SECRET_LENGTH:
        raise ConfigError(f"config error: {secret_file}: stored secret is too short; delete it")
    server = settings.server.model_copy(update={"secret_key": secret})
    return settings.model_copy(update={"server": server})


def load_settings(
    path: str | Path | None = None,
    environ: dict[str, str] | None = None,
    overrides: dict[str, Any] | None = None,
) -> Settings:
    """Read default.toml, then ``path`` (or ``PEERLEARN_CONFIG``), then the environment.

    ``overrides`` (nested dict) is applied last; tests and the CLI's ``--host/--port`` use it.
    """
    environ = dict(os.environ if environ is None else environ)
    data = _read_toml(DEFAULT_CONFIG_FILE)
    path = path or environ.get(ENV_PREFIX + "CONFIG")
    if path:
        data = _merge(data, _read_toml(Path(path)))
    data = _merge(data, _env_overrides(environ))
    if overrides:
        data = _merge(data, overrides)
    try:
        settings = Settings.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(_first_error(exc)) from None
    _check_job_lock(settings)
    return _ensure_secret(settings)


def _check_job_lock(settings: Settings) -> None:
    """``[jobs] lock`` names a part that must be configured."""
    lock = settings.jobs.lock
    if lock == "redis" and not settings.redis.url:
        raise ConfigError("config error: jobs.lock: 'redis' needs [redis] url")
    if lock == "postgres" and not settings.database_url.startswith("postgresql"):
        raise ConfigError("config error: jobs.lock: 'postgres' needs a PostgreSQL [database] url")


# --------------------------------------------------------------------------- deployment checks

#: a secret with fewer distinct characters than this is a typed-in word, not a random key
SECRET_MIN_DISTINCT = 12


class DeployCheck(BaseModel):
    """One finding of ``deploy_checks``: an error refuses a production start."""

    model_config = ConfigDict(frozen=True)

    level: Literal["error", "warning"]
    key: str
    message: str

    def line(self) -> str:
        return f"{self.level}: {self.key}: {self.message}"


def deploy_checks(settings: Settings) -> list[DeployCheck]:
    """What ``peerlearn check --deploy`` reports (errors first); ``serve`` in production
    refuses to start on any error."""
    found: list[DeployCheck] = []

    def error(key: str, message: str) -> None:
        found.append(DeployCheck(level="error", key=key, message=message))

    def warning(key: str, message: str) -> None:
        found.append(DeployCheck(level="warning", key=key, message=message))

    server = settings.server
    if not settings.is_production:
        warning(
            "server.mode",
            "development mode: migrations run by themselves, mail goes to "
            'the console, verification is optional; set mode = "production"',
        )
    secret = server.secret_key or ""
    if len(set(secret)) < SECRET_MIN_DISTINCT:
        error(
            "server.secret_key",
            "too weak (a repeated or typed-in value); generate one with "
            "python3 -c 'import secrets; print(secrets.token_urlsafe(48))'",
        )
    if not server.cookie_secure:
        error("server.cookie_secure", "must be true: cookies would travel over plain HTTP")
    if not server.public_url:
        error(
            "server.public_url",
            "required: links in mails and the allowed Host and Origin "
            "come from it (e.g. https://learn.example.org)",
        )
    elif not server.public_url.startswith("https://"):
        error("server.public_url", "must be an https:// URL in production")
    if settings.email.backend == "console":
        error("email.backend", "console mail only prints messages; use smtp")
    elif settings.email.backend == "file":
        warning("email.backend", "file mail is written to disk, never delivered; use smtp")
    if PLACEHOLDER_MARK in (settings.email.smtp_password or ""):
        error("email.smtp_password", f"still the example's {PLACEHOLDER_MARK} placeholder")
    if settings.database_url.startswith("sqlite"):
        warning(
            "database.url",
            "SQLite in production: one process only, no shared nodes; use PostgreSQL",
        )
    if not settings.redis.url:
        warning(
            "redis.url",
            "without Redis, login limits, tickets and session revocation are "
            "per process: fine for one node only",
        )
    if server.trust_proxy_headers and not server.trusted_proxies:
        warning(
            "server.trust_proxy_headers",
            "legacy switch: trusts a proxy on loopback only; "
            "list your proxies in server.trusted_proxies instead",
        )
    if settings.auth.require_verified_email is False:
        warning("auth.require_verified_email", "unverified accounts can book and rate")
    found.sort(key=lambda check: check.level != "error")
    return found

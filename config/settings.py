"""Settings: one frozen object, read once from the environment.

Nothing else in the code base reads ``os.environ``; readers here reject nonsense
(``"yes"`` for a port) instead of guessing.
"""

from __future__ import annotations

import ipaddress
import os
import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_CONFIG_DIR = ROOT / "config"
DEFAULT_INSTANCE_DIR = ROOT / "instance"

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


class SettingsError(ValueError):
    """A setting is missing or malformed; the message names it."""


def parse_bool(name: str, raw: str | None, default: bool) -> bool:
    """Read a boolean that must be spelled plainly, or fail naming the variable."""
    if raw is None or raw == "":
        return default
    value = raw.strip().lower()
    if value in {"1", "true", "yes", "on"}:
        return True
    if value in {"0", "false", "no", "off"}:
        return False
    raise SettingsError(f"{name} must be true or false, not {raw!r}")


def parse_int(name: str, raw: str | None, default: int, minimum: int = 0) -> int:
    """Read a whole number, or fail naming the variable."""
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise SettingsError(f"{name} must be a whole number, not {raw!r}") from None
    if value < minimum:
        raise SettingsError(f"{name} must be at least {minimum}, not {value}")
    return value


def parse_list(raw: str | None) -> tuple[str, ...]:
    """Split a comma-separated list, dropping blanks."""
    if not raw:
        return ()
    return tuple(part.strip() for part in raw.split(",") if part.strip())


def sqlalchemy_url(raw: str) -> str:
    """A database URL for SQLAlchemy with the psycopg 3 driver we install.

    Heroku, Render and the postgres images hand out ``postgres://`` or ``postgresql://``;
    SQLAlchemy reads a bare ``postgresql`` as psycopg2 (not installed) and does not know
    ``postgres`` at all. Any other URL, or one naming its driver, is left as written.
    """
    scheme, sep, rest = raw.partition("://")
    if sep and scheme.lower() in {"postgres", "postgresql"}:
        return f"postgresql+psycopg://{rest}"
    return raw


def instance_secret(directory: Path, name: str, make: Callable[[], str]) -> str:
    """A secret kept in a file of ``directory``, made on first use, readable by us alone.

    The file is born with mode 0600 (``O_CREAT | O_EXCL``, no chmod afterwards, so it is
    never readable by others even for an instant), written under a temporary name and
    then hard-linked into place: two processes starting at once agree on one secret and
    neither reads a half-written file.
    """
    path = directory / name
    if not path.exists():
        directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        temporary = directory / f".{name}.{os.getpid()}.{secrets.token_hex(4)}"
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            with os.fdopen(fd, "w") as handle:
                handle.write(make())
                handle.flush()
                os.fsync(handle.fileno())
            try:
                os.link(temporary, path)
            except FileExistsError:
                pass  # another process won the race: use its secret
        finally:
            temporary.unlink(missing_ok=True)
    return path.read_text().strip()


def _fernet_key() -> str:
    from cryptography.fernet import Fernet

    return Fernet.generate_key().decode("ascii")


def _random_secret() -> str:
    return secrets.token_urlsafe(32)


def _bind_host(bind: str) -> str:
    if bind.startswith("["):  # [v6]:port
        return bind[1 : bind.find("]")]
    if bind.count(":") == 1:  # host:port
        return bind.split(":", 1)[0]
    return bind  # a bare host, or a bare IPv6 address


def exposed_binds(binds: tuple[str, ...] | list[str]) -> list[str]:
    """The listen addresses (``host:port``, ``[v6]:port``, ``unix:…``) reachable from
    other machines: everything but loopback and unix sockets."""
    exposed = []
    for bind in binds:
        bind = bind.strip()
        if not bind or bind.startswith(("unix:", "fd://")):
            continue
        host = _bind_host(bind).lower()
        if host == "localhost":
            continue
        try:
            if ipaddress.ip_address(host).is_loopback:
                continue
        except ValueError:
            pass  # a host name other than localhost: assume it is reachable
        exposed.append(bind)
    return exposed


def exposure_warning(environment_set: bool, binds: tuple[str, ...] | list[str]) -> str | None:
    """The loud start-up warning when ``HOTLINE_ENV`` is unset and we listen beyond loopback.

    Unset means development: a generated SECRET_KEY, instance key files and insecure
    cookies are fine on a laptop, not on an address others can reach.
    """
    exposed = exposed_binds(binds)
    if environment_set or not exposed:
        return None
    return (
        "HOTLINE_ENV IS UNSET but the service listens on "
        + ", ".join(exposed)
        + ": running with DEVELOPMENT defaults (generated keys in instance/, no key checks) "
        "on a reachable address. Set HOTLINE_ENV=production with real keys, or bind to "
        "127.0.0.1."
    )


def _spool_path(raw: str | None, default: Path | None) -> Path | None:
    """SPOOL_PATH: a directory, or ``off`` to disable the outage spool."""
    if raw is None or raw.strip() == "":
        return default
    if raw.strip().lower() == "off":
        return None
    return Path(raw.strip())


def parse_networks(name: str, raw: str | None) -> tuple[IPNetwork, ...]:
    """A comma-separated list of addresses or networks (``10.0.0.0/8``), or fail naming it."""
    try:
        return tuple(ipaddress.ip_network(part, strict=False) for part in parse_list(raw))
    except ValueError as exc:
        raise SettingsError(f"{name}: {exc}") from None


def _metrics_token(raw: str | None) -> str | None:
    """METRICS_TOKEN: the scraper's bearer token; a short one is guessable."""
    token = (raw or "").strip() or None
    if token is not None and len(token) < 16:
        raise SettingsError("METRICS_TOKEN must be at least 16 characters")
    return token


def _multiproc_dir(raw: str | None) -> Path | None:
    """PROMETHEUS_MULTIPROC_DIR: prometheus_client itself reads it (to share counters
    between gunicorn's workers); a missing directory would fail at the first count."""
    if not raw:
        return None
    path = Path(raw)
    if not path.is_dir():
        raise SettingsError(f"PROMETHEUS_MULTIPROC_DIR {raw!r} is not a directory")
    return path


def _log_format(raw: str | None) -> str:
    value = (raw or "text").strip().lower()
    if value not in {"text", "json"}:
        raise SettingsError(f"LOG_FORMAT must be text or json, not {raw!r}")
    return value


@dataclass(frozen=True)
class Settings:
    """Everything the service needs to know about where it runs."""

    database_url: str = f"sqlite:///{ROOT / 'instance' / 'hotline.sqlite3'}"
    redis_url: str | None = None  # None: the embedded in-process queue
    redis_namespace: str = ""  # prefix of queue and limiter keys (tests run side by side)
    secret_key: str = field(default_factory=lambda: secrets.token_urlsafe(32))
    secret_key_fallbacks: tuple[str, ...] = ()
    config_dir: Path = DEFAULT_CONFIG_DIR
    environment: str = "development"  # development | production | test
    environment_set: bool = True  # False: HOTLINE_ENV was unset (the start-up warning)
    bind: tuple[str, ...] = ()  # HOTLINE_BIND: where this process listens (make run sets it)
    public_base_url: str | None = None  # the URL Twilio calls, e.g. https://hotline.example.org
    twilio_account_sid: str = "AC00000000000000000000000000000000"
    twilio_auth_token: str | None = None
    twilio_from_number: str = "+15005550006"
    twilio_api_base_url: str | None = None  # tests point the SDK at a local server
    # WhatsApp through Twilio: the sender (defaults to TWILIO_FROM_NUMBER) and the approved
    # template (a Content SID, HX…) that says "you have a reply" outside the 24-hour window.
    twilio_whatsapp_from: str | None = None
    twilio_whatsapp_template_sid: str | None = None
    twilio_timeout_seconds: int = 10
    operator_numbers: tuple[str, ...] = ()  # <Dial> targets for the IVR
    operator_queue: str | None = None  # an <Enqueue> name instead of <Dial>
    oncall_supervisor_phone: str | None = None
    supervisor_emails: tuple[str, ...] = ()
    pii_encryption_keys: tuple[str, ...] = ()
    pii_lookup_key: str | None = None  # keys the phone look-up HMAC; default: last PII key
    audit_keys: tuple[str, ...] = ()  # HMAC keys of the audit chain: the first signs
    audit_anchor_seconds: int = 60  # how often the worker signs the moved chain heads
    session_cookie_secure: bool = True
    session_minutes: float = 30  # idle lifetime (tests use fractions of a minute)
    chat_wait_seconds: int = 180  # CHAT_WAIT_SECONDS: then a waiting tipster is offered other ways
    proxy_count: int = 0  # ProxyFix: exactly the number of proxies in front
    smtp_host: str | None = None
    smtp_port: int = 25
    smtp_user: str | None = None
    smtp_password: str | None = None
    smtp_from: str = "hotline@localhost"
    smtp_starttls: bool = False
    embedded_worker: bool = True  # run queued jobs in a thread when REDIS_URL is unset
    delivery_timeout_seconds: int = 10  # the total deadline of one try, not a socket timeout
    delivery_max_attempts: int = 5
    delivery_lease_seconds: int = 60
    delivery_backoff_seconds: int = 30  # first retry delay; doubles each attempt (capped 1 h)
    relay_poll_ms: int = 100  # how often the outbox relay looks for due rows (an indexed query)
    # The outage spool (intake.spool): a directory on local disk where every web process
    # of a host shares one SQLite file per database; None (SPOOL_PATH=off) turns
    # spooling off (intake then fails while the database is down).
    spool_path: Path | None = ROOT / "instance" / "spool"
    spool_drain_ms: int = 1000  # how often each web process looks for spooled items
    deadline_check_seconds: int = 60  # how often the deadline watch runs
    rate_limits_enabled: bool = True
    statistics_k: int = 5  # research rows: k cases share each combination; public cells >= k
    log_level: str = "INFO"
    log_format: str = "text"  # LOG_FORMAT: text, or json (one object per line)
    # /metrics is answered to a bearer METRICS_TOKEN, or to a client in METRICS_ALLOW;
    # with neither set it is a 404 for everyone.
    metrics_token: str | None = None
    metrics_allow: tuple[IPNetwork, ...] = ()
    prometheus_multiproc_dir: Path | None = None
    env: Mapping[str, str] = field(default_factory=dict, repr=False, compare=False)

    @property
    def is_production(self) -> bool:
        return self.environment == "production"

    @property
    def uses_redis(self) -> bool:
        return bool(self.redis_url)

    def with_overrides(self, **changes: object) -> Settings:
        """A copy with some fields changed (tests use this)."""
        return replace(self, **changes)  # type: ignore[arg-type]

    def agency_env(self, code: str, key: str) -> str | None:
        """``AGENCY_<CODE>_<KEY>`` from the environment captured at start-up."""
        return self.env.get(f"AGENCY_{code.upper()}_{key.upper()}") or None

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """Read and check every setting; raise SettingsError naming the bad one."""
        env = dict(os.environ if environ is None else environ)
        defaults = cls()
        environment = env.get("HOTLINE_ENV", "development").strip().lower()
        if environment not in {"development", "production", "test"}:
            raise SettingsError(
                f"HOTLINE_ENV must be development, production or test, not {environment!r}"
            )
        production = environment == "production"
        instance_dir = Path(env.get("HOTLINE_INSTANCE_DIR") or DEFAULT_INSTANCE_DIR)
        secret_key = env.get("SECRET_KEY")
        if not secret_key:
            if production:
                raise SettingsError("SECRET_KEY must be set in production")
            # Every process of the embedded setup (server, CLI, worker) shares the file.
            secret_key = instance_secret(instance_dir, "secret_key", _random_secret)
        auth_token = env.get("TWILIO_AUTH_TOKEN") or None
        if production and not auth_token:
            raise SettingsError("TWILIO_AUTH_TOKEN must be set in production")
        pii_keys = parse_list(env.get("PII_ENCRYPTION_KEYS"))
        if not pii_keys:
            if production:
                raise SettingsError("PII_ENCRYPTION_KEYS must be set in production")
            # A key of its own, never derived from SECRET_KEY: one leaked secret must not
            # open both the sessions and the data.
            pii_keys = (instance_secret(instance_dir, "pii_key", _fernet_key),)
        audit_keys = parse_list(env.get("AUDIT_KEYS"))
        if not audit_keys:
            if production:
                raise SettingsError("AUDIT_KEYS must be set in production")
            audit_keys = (instance_secret(instance_dir, "audit_key", _random_secret),)
        delivery_deadline = parse_int(
            "DELIVERY_TIMEOUT_SECONDS", env.get("DELIVERY_TIMEOUT_SECONDS"), 10, minimum=1
        )
        delivery_lease = parse_int(
            "DELIVERY_LEASE_SECONDS", env.get("DELIVERY_LEASE_SECONDS"), 60, minimum=5
        )
        if delivery_deadline >= delivery_lease:
            # A try still talking to the agency when its lease ends would be dispatched
            # again beside it: two POSTs at once.
            raise SettingsError(
                "DELIVERY_TIMEOUT_SECONDS must be shorter than DELIVERY_LEASE_SECONDS "
                f"({delivery_deadline} >= {delivery_lease})"
            )
        config_dir = Path(env.get("HOTLINE_CONFIG_DIR") or DEFAULT_CONFIG_DIR)
        if not config_dir.is_dir():
            raise SettingsError(f"HOTLINE_CONFIG_DIR {str(config_dir)!r} is not a directory")
        return cls(
            database_url=sqlalchemy_url(env.get("DATABASE_URL") or defaults.database_url),
            redis_url=env.get("REDIS_URL") or None,
            redis_namespace=env.get("REDIS_NAMESPACE", ""),
            secret_key=secret_key,
            secret_key_fallbacks=parse_list(env.get("SECRET_KEY_FALLBACKS")),
            config_dir=config_dir,
            environment=environment,
            environment_set=bool(env.get("HOTLINE_ENV", "").strip()),
            bind=parse_list(env.get("HOTLINE_BIND")),
            public_base_url=(env.get("PUBLIC_BASE_URL") or "").rstrip("/") or None,
            twilio_account_sid=env.get("TWILIO_ACCOUNT_SID") or defaults.twilio_account_sid,
            twilio_auth_token=auth_token,
            twilio_from_number=env.get("TWILIO_FROM_NUMBER") or defaults.twilio_from_number,
            twilio_api_base_url=env.get("TWILIO_API_BASE_URL") or None,
            twilio_whatsapp_from=env.get("TWILIO_WHATSAPP_FROM") or None,
            twilio_whatsapp_template_sid=env.get("TWILIO_WHATSAPP_TEMPLATE_SID") or None,
            twilio_timeout_seconds=parse_int(
                "TWILIO_TIMEOUT_SECONDS", env.get("TWILIO_TIMEOUT_SECONDS"), 10, minimum=1
            ),
            operator_numbers=parse_list(env.get("OPERATOR_NUMBERS")),
            operator_queue=env.get("OPERATOR_QUEUE") or None,
            oncall_supervisor_phone=env.get("ONCALL_SUPERVISOR_PHONE") or None,
            supervisor_emails=parse_list(env.get("SUPERVISOR_EMAILS")),
            pii_encryption_keys=pii_keys,
            pii_lookup_key=env.get("PII_LOOKUP_KEY") or None,
            audit_keys=audit_keys,
            audit_anchor_seconds=parse_int(
                "AUDIT_ANCHOR_SECONDS", env.get("AUDIT_ANCHOR_SECONDS"), 60, minimum=5
            ),
            session_cookie_secure=parse_bool(
                "SESSION_COOKIE_SECURE", env.get("SESSION_COOKIE_SECURE"), True
            ),
            session_minutes=parse_int("SESSION_MINUTES", env.get("SESSION_MINUTES"), 30, 1),
            chat_wait_seconds=parse_int(
                "CHAT_WAIT_SECONDS", env.get("CHAT_WAIT_SECONDS"), 180, minimum=10
            ),
            proxy_count=parse_int("PROXY_COUNT", env.get("PROXY_COUNT"), 0),
            smtp_host=env.get("SMTP_HOST") or None,
            smtp_port=parse_int("SMTP_PORT", env.get("SMTP_PORT"), 25, minimum=1),
            smtp_user=env.get("SMTP_USER") or None,
            smtp_password=env.get("SMTP_PASSWORD") or None,
            smtp_from=env.get("SMTP_FROM") or defaults.smtp_from,
            smtp_starttls=parse_bool("SMTP_STARTTLS", env.get("SMTP_STARTTLS"), False),
            embedded_worker=parse_bool("EMBEDDED_WORKER", env.get("EMBEDDED_WORKER"), True),
            delivery_timeout_seconds=delivery_deadline,
            delivery_max_attempts=parse_int(
                "DELIVERY_MAX_ATTEMPTS", env.get("DELIVERY_MAX_ATTEMPTS"), 5, minimum=1
            ),
            delivery_lease_seconds=delivery_lease,
            delivery_backoff_seconds=parse_int(
                "DELIVERY_BACKOFF_SECONDS", env.get("DELIVERY_BACKOFF_SECONDS"), 30, minimum=1
            ),
            relay_poll_ms=parse_int("RELAY_POLL_MS", env.get("RELAY_POLL_MS"), 100, minimum=50),
            statistics_k=parse_int("STATISTICS_K", env.get("STATISTICS_K"), 5, minimum=2),
            spool_path=_spool_path(env.get("SPOOL_PATH"), defaults.spool_path),
            spool_drain_ms=parse_int(
                "SPOOL_DRAIN_MS", env.get("SPOOL_DRAIN_MS"), 1000, minimum=50
            ),
            deadline_check_seconds=parse_int(
                "DEADLINE_CHECK_SECONDS", env.get("DEADLINE_CHECK_SECONDS"), 60, minimum=1
            ),
            rate_limits_enabled=parse_bool(
                "RATE_LIMITS_ENABLED", env.get("RATE_LIMITS_ENABLED"), True
            ),
            log_level=(env.get("LOG_LEVEL") or "INFO").upper(),
            log_format=_log_format(env.get("LOG_FORMAT")),
            metrics_token=_metrics_token(env.get("METRICS_TOKEN")),
            metrics_allow=parse_networks("METRICS_ALLOW", env.get("METRICS_ALLOW")),
            prometheus_multiproc_dir=_multiproc_dir(env.get("PROMETHEUS_MULTIPROC_DIR")),
            env={k: v for k, v in env.items() if k.startswith("AGENCY_")},
        )

"""One settings object: defaults, then a TOML file, then ACCU_INGEST_* variables, then options.

Every other module receives a ``Settings``; nothing reads the environment itself. A bad value
stops start-up with a message naming the setting, where it can be set and what is expected.
"""

from __future__ import annotations

import difflib
import os
import socket
from pathlib import Path
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from worker.parsers.options import DateOrder, TableMapping

ENV_PREFIX = "ACCU_INGEST_"

DEFAULT_EXCLUDE = [
    ".*", "~$*", "*.tmp", "*.part", "*.partial", "*.crdownload", ".~lock*", ".syncthing.*",
    "*.swp", "Thumbs.db", "desktop.ini", "*.reason.txt",
]


# Settings that are also command-line options (the others are set in the file or environment).
CLI_OPTIONS = ("inbox", "data_dir", "database_url", "queue_url", "host", "port", "workers",
               "consumer_processes", "node")
# Secrets are never options: a command line is visible in `ps` and is copied into unit files.
SECRETS = ("queue_secret", "audit_key", "notify", "job_report_url", "web_token")


class SettingsError(Exception):
    """Invalid configuration; the message names the setting and the fix."""


class MethodSettings(BaseModel):
    """Chemistry choices for one analyte or method (a ``[methods.NAME]`` table in the TOML).

    Looked up for a curve or sample by its analyte label, then by the job's acquisition method
    name, then ``default``; anything not set takes the built-in value below.
    """

    model_config = ConfigDict(extra="forbid")

    level_corrections: dict[float, float] = Field(
        default_factory=dict, description="nominal level → true level, e.g. {\"12\" = 12.5}")
    exclude_levels: list[float] = Field(default_factory=list,
                                        description="nominal levels left out of the fit")
    min_r2: float = Field(0.99, ge=0, le=1, description="r² below this is flagged")
    rt_tolerance_min: float = Field(0.5, ge=0, description="identity: |ΔRT| allowed (min)")
    purity_min_pct: float | None = Field(None, ge=0, le=100,
                                         description="acceptance: pass when purity ≥ this")
    purity_decimals: int | None = Field(None, ge=0, le=6,
                                        description="round purity to these decimals first")
    dilution_factor: float = Field(1.0, gt=0, description="sample concentration = c × this")
    volume: float | None = Field(None, gt=0, description="sample volume; gives the amount")
    volume_unit: str = Field("mL", description="unit of volume: L, mL, µL (uL), nL")
    concentration_unit: str = Field("µg/mL", description="unit of the standard levels")
    purity_signal: str | None = Field(
        None, description="signal purity is computed on: its name as the file prints it, or a "
                          "wavelength such as '254 nm' (default: the first peak table)")
    reason: str | None = Field(
        None, description="why the level corrections / exclusions are made (required with "
                          "them; recorded in the audit trail when they take effect)")

    @model_validator(mode="after")
    def _corrections_say_why(self) -> MethodSettings:
        if (self.level_corrections or self.exclude_levels) and not (self.reason or "").strip():
            raise ValueError("level_corrections and exclude_levels change results: add "
                             "reason = \"…\" (why, e.g. a certificate number) beside them")
        return self

    @field_validator("concentration_unit")
    @classmethod
    def _mass_per_volume(cls, unit: str) -> str:
        from worker.chemistry.quantity import split_concentration_unit
        from worker.chemistry.steps import ChemistryError
        try:
            split_concentration_unit(unit)
        except ChemistryError as exc:
            raise ValueError(str(exc)) from None
        return unit

    @field_validator("volume_unit")
    @classmethod
    def _known_volume(cls, unit: str) -> str:
        from worker.chemistry.quantity import VOLUME_UNITS
        if unit not in VOLUME_UNITS:
            raise ValueError(f"expected one of {sorted(VOLUME_UNITS)}")
        return unit

    @field_validator("level_corrections")
    @classmethod
    def _positive_levels(cls, corrections: dict[float, float]) -> dict[float, float]:
        if any(level <= 0 for level in corrections.values()):
            raise ValueError("a corrected level must be > 0")
        return corrections


class RetentionSettings(BaseModel):
    """What the scheduler's maintenance pass may delete (the ``[retention]`` table)."""

    model_config = ConfigDict(extra="forbid")

    processed_days: float | None = Field(
        None, gt=0, description="delete files in processed/ older than this (the raw store "
                                "keeps their bytes); default: keep them")
    processed_gb: float | None = Field(
        None, gt=0, description="delete the oldest files in processed/ while it is larger "
                                "than this; default: no limit")
    canary_days: float = Field(7.0, gt=0, description="canary rows older than this are pruned")
    orphan_pack_hours: float = Field(
        24.0, gt=0, description="a raw pack no ledger row points to (left by a crash) is removed "
                                "once this old")


NotifyEvent = Literal["rejected", "backlog", "canary", "inbox", "consumers", "disk", "audit",
                      "job_finished"]
NOTIFY_EVENTS: tuple[str, ...] = NotifyEvent.__args__  # type: ignore[attr-defined]


class NotifyTarget(BaseModel):
    """One receiver of notifications (a ``[[notify]]`` table): an apprise URL and the events it
    wants. A problem's "resolved" message goes to every target that got the problem."""

    model_config = ConfigDict(extra="forbid")

    url: SecretStr = Field(description="apprise URL: mailtos://…, msteams://…, json://…, "
                                       "ntfy://… (secrets in it are never logged)")
    events: list[NotifyEvent] = Field(default_factory=lambda: list(NOTIFY_EVENTS),
                                      description="what it is told about (default: all)")
    name: str | None = Field(None, description="how logs and metrics call it (default: the "
                                               "URL's scheme and host)")

    @field_validator("url")
    @classmethod
    def _apprise_knows_it(cls, url: SecretStr) -> SecretStr:
        import apprise  # only when a target is configured: apprise loads its plugins
        if not apprise.Apprise().add(url.get_secret_value()):
            raise ValueError("apprise does not recognise this URL (see "
                             "https://github.com/caronc/apprise/wiki for each service's form)")
        return url

    @property
    def label(self) -> str:
        if self.name:
            return self.name
        scheme, _, rest = self.url.get_secret_value().partition("://")
        host = rest.rsplit("@", 1)[-1].split("/", 1)[0].split("?", 1)[0]
        return f"{scheme}://{host}"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, extra="forbid",
                                      validate_default=True)

    inbox: Path = Field(Path("inbox"), description="folder the instrument exports into")
    create_inbox: bool = Field(
        False, description="create a missing inbox at start; off, a missing inbox stops the "
                           "start, so a mistyped path is not watched while the instrument "
                           "writes elsewhere")
    data_dir: Path = Field(Path("data"), description="database, queue, raw store, logs")
    database_url: str | None = Field(None, description="sqlite:///… (default) or postgresql://…")
    queue_url: str | None = Field(None, description="sqlite:///… (default), redis://…, postgresql://…")
    queue_secret: SecretStr | None = Field(None, description="signs queue payloads")
    audit_key: SecretStr | None = Field(
        None, min_length=16, description="keys the audit trail's HMAC instead of "
                                         "audit_key_file; scaled out, the same on every machine")
    audit_key_file: Path | None = Field(
        None, description="the audit trail's HMAC key, created (0600) when absent (default "
                          "data_dir/audit.key)")
    audit_anchor_file: Path | None = Field(
        None, description="append-only checkpoints of the audit trail's head (default "
                          "data_dir/audit.anchor)")
    audit_anchor_seconds: float = Field(
        5.0, gt=0, description="the scheduler checkpoints the trail's head this often when it "
                               "moved")
    queue_name: str = Field("accu-ingest", min_length=1, pattern=r"^[A-Za-z0-9_.-]+$",
                            description="queue name; several installations can share a server")
    node: str = Field(default_factory=socket.gethostname, min_length=1,
                      description="this watcher's identity: the origin of the files it registers")
    raw_in_database: bool | None = Field(
        None, description="also keep raw bytes in the database (default: when it is not the "
                          "embedded SQLite, so consumers elsewhere need no shared folder)")
    host: str = Field("127.0.0.1", description="status endpoint address")
    port: int = Field(8008, ge=0, le=65535, description="status endpoint port (0 = any free)")
    web_token: SecretStr | None = Field(
        None, min_length=16, description="access token for the pages, API, /status and "
        "/metrics (Bearer, or the password of HTTP basic); required to listen on an address "
        "other than loopback")
    stable_seconds: float = Field(1.0, ge=0, description="size+mtime unchanged this long")
    closed_stable_seconds: float = Field(
        0.15, ge=0, description="the shorter window for a file its writer was seen to close "
        "(close-after-write or rename into place, where the platform reports it)")
    dispose_settle_seconds: float = Field(
        10.0, ge=0, description="a rejected file (with `polling`, or where closes are not "
        "reported, any file) leaves the inbox only once unchanged this long since it was read: "
        "a writer that pauses or reopens it to append gets it taken again, not moved away")
    rescan_seconds: float = Field(30.0, gt=0, description="periodic rescan of the inbox")
    reconcile_seconds: float = Field(10.0, gt=0, description="re-enqueue expired leases")
    lease_seconds: float = Field(120.0, gt=0, description="how long a consumer owns a file")
    max_attempts: int = Field(5, ge=1, description="unexpected failures before rejecting")
    polling: bool = Field(False, description="polling observer (network shares)")
    include: list[str] = Field(default_factory=lambda: ["*"])
    exclude: list[str] = Field(default_factory=lambda: list(DEFAULT_EXCLUDE))
    after_ingest: Literal["move", "keep", "delete"] = "move"
    intake_max_backlog: int = Field(
        10_000, ge=2, description="the watcher takes no more files while this many are "
        "registered and not final (all nodes): a larger backlog waits in the inbox, so memory "
        "and the queue stay bounded")
    max_file_mb: float = Field(512.0, gt=0, description="larger files are rejected")
    max_peaks_per_table: int = Field(
        100_000, ge=1, description="a peak table with more rows is rejected naming this "
        "setting: read whole it would need more memory than the bounded ingest allows")
    max_trace_points: int = Field(
        1_500_000, ge=1, description="a trace with more points is rejected naming this setting")
    max_sheet_cells: int = Field(
        1_000_000, ge=1, description="a worksheet with more cells is rejected naming this "
        "setting")
    workers: int = Field(1, ge=1, le=64, description="consumer threads (per consumer process)")
    consumer_processes: int = Field(
        2, ge=0, le=64, description="`run` only: consumer processes beside the watcher's, each "
        "with `workers` threads, so parsing and writing rows use other cores than intake; "
        "0 = the consumer threads run in the watcher's process")
    fsync: bool = Field(True, description="fsync raw bytes and SQLite commits (durability)")
    min_free_mb: float = Field(512.0, ge=0,
                               description="readiness fails below this free space under data_dir")
    backlog_max_minutes: float = Field(
        30.0, gt=0, description="readiness fails when an unfinished file is older than this")
    canary_seconds: float = Field(0.0, ge=0, description="end-to-end canary interval; 0 = off")
    canary_timeout_seconds: float = Field(
        300.0, gt=0, description="a canary not ingested this long after its drop has failed")
    log_format: Literal["auto", "text", "json"] = Field(
        "auto", description="auto: JSON lines under data_dir/logs when not on a terminal")
    methods: dict[str, MethodSettings] = Field(
        default_factory=dict, description="chemistry per analyte / method name / 'default'")
    encodings: dict[str, str] = Field(
        default_factory=dict, description="file-name glob → code page for exports that do not "
                                          "declare theirs, e.g. {\"*.txt\" = \"cp1250\"}")
    tables: dict[str, TableMapping] = Field(
        default_factory=dict, description="column mappings for generic peak tables (.csv/.xlsx)")
    default_encoding: str | None = Field(
        None, description="code page for exports that declare none and are not UTF-8; default: "
                          "this machine's (the ANSI code page on Windows, cp1252 elsewhere)")
    date_order: DateOrder = Field(
        "auto", description="day/month order of a/b/yyyy dates: day-first, month-first, or "
                            "auto (from the file's own unambiguous dates; else left unread)")
    scrub_seconds: float = Field(
        86400.0, ge=0, description="the scheduler re-hashes the whole raw store, and applies "
                                   "retention, this often; 0 = off")
    scrub_mb_per_second: float = Field(
        8.0, gt=0, description="the scrub reads the raw store no faster than this")
    scrub_backlog_wait_seconds: float = Field(
        3600.0, ge=0, description="a scrub pass pauses while ingest has a backlog, at most this "
                                  "long in all, then reads on; 0 = never pauses")
    retention: RetentionSettings = Field(default_factory=RetentionSettings)
    group_settle_seconds: float = Field(
        5.0, ge=0, description="a ChemStation .D folder's CSV report set waits this long after "
                               "its last file arrived for a Report.TXT before being read alone")

    notify: list[NotifyTarget] = Field(
        default_factory=list, description="notification targets ([[notify]] tables)")
    notify_group_seconds: float = Field(
        30.0, ge=0, description="a burst of events is sent as one message once none came for "
                                "this long (at most 10 × this after the first); also the "
                                "least time between two messages to one target")
    notify_poll_seconds: float = Field(
        5.0, gt=0, description="how often the notifier reads the ledger and the checks")
    audit_verify_minutes: float = Field(
        60.0, ge=0, description="the notifier verifies the audit trail this often (0 = never)")
    job_settle_seconds: float = Field(
        300.0, gt=0, description="a job is finished when no file of it has finished for this "
                                 "long and none is waiting: its report is written then")
    job_report_url: SecretStr | None = Field(
        None, description="POST each job report here (JSON, with an Idempotency-Key header), "
                          "retried until it is taken")

    @field_validator("job_report_url")
    @classmethod
    def _http_url(cls, url: SecretStr | None) -> SecretStr | None:
        if url is not None and not url.get_secret_value().startswith(("http://", "https://")):
            raise ValueError("expected an http:// or https:// URL")
        return url

    @field_validator("default_encoding")
    @classmethod
    def _known_default(cls, codec: str | None) -> str | None:
        if codec is not None:
            cls._known_codecs({"default_encoding": codec})
        return codec

    @field_validator("encodings")
    @classmethod
    def _known_codecs(cls, encodings: dict[str, str]) -> dict[str, str]:
        import codecs
        for glob, codec in encodings.items():
            try:
                codecs.lookup(codec)
            except LookupError:
                raise ValueError(f"{codec!r} (for {glob!r}) is not a known code page; e.g. "
                                 "cp1250, cp1252, big5, shift_jis, gbk") from None
        return encodings

    @field_validator("database_url", "queue_url")
    @classmethod
    def _known_scheme(cls, url: str | None) -> str | None:
        if url is None:
            return url
        scheme = url.split("://", 1)[0] if "://" in url else ""
        if scheme not in ("sqlite", "postgresql", "postgres", "redis", "rediss"):
            raise ValueError("expected a URL starting sqlite:///, postgresql:// or redis://")
        return url

    @property
    def database(self) -> str:
        return self.database_url or f"sqlite:///{self.data_dir / 'accu-ingest.db'}"

    @property
    def queue(self) -> str:
        return self.queue_url or f"sqlite:///{self.data_dir / 'queue.db'}"

    @property
    def embedded_database(self) -> bool:
        return self.database.startswith("sqlite:")

    @property
    def blobs_in_database(self) -> bool:
        """Raw bytes go to the database too when consumers may run on other machines."""
        if self.raw_in_database is not None:
            return self.raw_in_database
        return not self.embedded_database

    @property
    def audit_key_path(self) -> Path:
        return self.audit_key_file or self.data_dir / "audit.key"

    @property
    def audit_anchor_path(self) -> Path:
        return self.audit_anchor_file or self.data_dir / "audit.anchor"

    @property
    def queue_key_path(self) -> Path:
        """The SQLite queue's signing key when ``queue_secret`` is not set."""
        return self.data_dir / "queue.key"

    @property
    def raw_dir(self) -> Path:
        return self.data_dir / "raw"

    @property
    def processed_dir(self) -> Path:
        return self.data_dir / "processed"

    @property
    def quarantine_dir(self) -> Path:
        return self.data_dir / "quarantine"

    @property
    def logs_dir(self) -> Path:
        return self.data_dir / "logs"

    @property
    def reports_dir(self) -> Path:
        return self.data_dir / "reports"

    @property
    def config_file(self) -> Path | None:
        """The --config file these settings were read from, for the commands messages give."""
        toml = self.model_config.get("toml_file")
        return Path(toml) if isinstance(toml, str | Path) else None

    @property
    def max_file_bytes(self) -> int:
        return int(self.max_file_mb * 1024 * 1024)

    @classmethod
    def settings_customise_sources(cls, settings_cls: type[BaseSettings],
                                   init_settings: PydanticBaseSettingsSource,
                                   env_settings: PydanticBaseSettingsSource,
                                   dotenv_settings: PydanticBaseSettingsSource,
                                   file_secret_settings: PydanticBaseSettingsSource,
                                   ) -> tuple[PydanticBaseSettingsSource, ...]:
        toml = settings_cls.model_config.get("toml_file")
        sources: tuple[PydanticBaseSettingsSource, ...] = (init_settings, env_settings)
        if toml:
            sources += (TomlConfigSettingsSource(settings_cls, toml_file=toml),)
        return sources


def load(config_file: Path | None = None, **options: Any) -> Settings:
    """Settings from every layer; options set to None (not given on the command line) are
    skipped."""
    given = {k: v for k, v in options.items() if v is not None}
    _unknown_variables()
    cls = Settings
    if config_file is not None:
        if not config_file.is_file():
            raise SettingsError(f"config file {config_file} does not exist (--config)")

        class FileSettings(Settings):
            model_config = SettingsConfigDict(**{**Settings.model_config,
                                                 "toml_file": config_file})
        cls = FileSettings
    try:
        return cls(**given)
    except ValidationError as exc:
        raise SettingsError(_explain(exc, config_file)) from None
    except ValueError as exc:  # a TOML syntax error
        raise SettingsError(f"config file {config_file}: {exc}{_toml_hint(exc)}") from None


def _unknown_variables() -> None:
    """An ACCU_INGEST_* variable with a typo would otherwise be ignored without a word."""
    known = {ENV_PREFIX + name.upper() for name in Settings.model_fields}
    unknown = sorted(k for k in os.environ if k.upper().startswith(ENV_PREFIX)
                     and k.upper() not in known)
    for name in unknown:
        close = difflib.get_close_matches(name.upper(), sorted(known), n=1)
        fix = f"did you mean {close[0]}?" if close else "see the README's settings table"
        raise SettingsError(f"environment variable {name} is not a setting: correct its "
                            f"spelling or unset it ({fix})")


def _toml_hint(exc: ValueError) -> str:
    """TOML's double-quoted strings treat a backslash as an escape: C:\\lab fails."""
    if "escape" in str(exc).lower() or "\\" in str(exc):
        return ("; a Windows path in double quotes needs its backslashes doubled: write it in "
                "single quotes instead, e.g. inbox = 'C:\\Lab\\inbox'")
    return ""


def _places(key: str, config_file: Path | None) -> str:
    """Where a top-level setting can really be set: options only for those that exist."""
    places = [f"--{key.replace('_', '-')}"] if key in CLI_OPTIONS else []
    places.append(f"{ENV_PREFIX}{key.upper()}")
    places.append(f"`{key} = …` in {config_file}" if config_file
                  else f"`{key} = …` in a --config file")
    return ", ".join(places[:-1]) + f" or {places[-1]}"


def _explain(exc: ValidationError, config_file: Path | None) -> str:
    lines = ["invalid settings:"]
    for err in exc.errors():
        key = str(err["loc"][0]) if err["loc"] else "?"
        places = _places(key, config_file)
        if err["type"] == "extra_forbidden":
            if len(err["loc"]) > 1:  # e.g. a typo inside [methods.default]
                table = ".".join(str(p) for p in err["loc"][:-1])
                lines.append(f"- {err['loc'][-1]!r} is not a setting of the [{table}] table "
                             "(check the spelling; the README lists its keys)")
            else:
                lines.append(f"- {key!r} is not a setting (check the spelling)")
            continue
        got = err.get("input")
        if len(err["loc"]) > 1:  # a nested setting, e.g. methods.default.rt_tolerance_min
            key = ".".join(str(part) for part in err["loc"])
            places = f"the [{'.'.join(str(p) for p in err['loc'][:2])}] table of the config file"
        lines.append(f"- {key}: {err['msg']} (got {got!r}); set it with {places}")
    return "\n".join(lines)

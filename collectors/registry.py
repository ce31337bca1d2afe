"""The registry of sources: everything the rest of leakwatch needs to know about a platform.

Modelled on dlt's destination registry: each platform declares one `Source` (its name, settings
model, secrets, a factory for its collector and the facts others show or compute), and every other
module iterates `sources()` instead of naming platforms. The built-in sources are declared in
`collectors/<name>_source.py` and listed in `BUILTIN`; a plug-in (or a test) calls `register()`.
Declarations are light: the client libraries load only when a collector is built.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from datetime import date, datetime
from importlib import import_module
from typing import Any

from .base import Collector, CollectorError
from .settings import SourceSettings

# Modules that each define SOURCE, in the order platforms are collected and shown.
BUILTIN = ("collectors.reddit_source", "collectors.bluesky_source")


class UnknownSource(CollectorError):
    """A platform name no registered source has."""


@dataclass(frozen=True)
class DemoPass:
    """One collection pass of `leakwatch demo` against a replay server."""

    settings: SourceSettings  # pointed at the replay server
    secrets: dict[str, str]  # the replay server's demo credentials
    options: dict[str, Any] = field(default_factory=dict)  # extra keyword arguments for `build`
    label: str = ""  # printed before the pass's summary line
    # The replay's clock: the pass's runs are recorded at its time, so exports of the sample weeks
    # show the runs that collected them.
    clock: Callable[[], datetime] | None = None


@dataclass(frozen=True)
class DemoSession:
    intro: str  # what is replayed, one line
    passes: Iterator[DemoPass]


def _cursor_means_resume(cursor: str | None) -> bool:
    return cursor is not None


def _carried_url(post_id: str, url: str | None) -> str | None:
    return url


def _queries_only(settings: SourceSettings) -> dict[str, Any]:
    return {"queries": list(settings.queries)}


@dataclass(frozen=True)
class Source:
    name: str  # the `platform` value in the warehouse
    display_name: str
    settings_model: type[SourceSettings]  # the config section [<name>]
    # build(settings, secrets, since=, until=, **options) -> Collector; secrets maps every name in `secrets`.
    build: Callable[..., Collector]
    secrets: tuple[str, ...] = ()  # environment variables the collector needs
    kinds: tuple[str, ...] = ()  # the `kind` values its posts take, thread roots first
    color: str = "#868e96"  # plot colour
    # The earliest day its posts can have been written (the platform's launch, or a safe bound before
    # it). The earliest of all sources bounds the plausible post dates; None: no bound of its own.
    launched: date | None = None
    # SQL over the posts table (alias p): the engagement the report ranks posts by, and in words.
    engagement_sql: str = "0"
    engagement_text: str = ""
    # post_url(post_id, url) -> the post's own web address; by default the `url` it was stored with.
    post_url: Callable[[str, str | None], str | None] = _carried_url
    # SQL over the posts table (alias p): the post's own web address (exports' post_url), or NULL.
    post_url_sql: str = "NULL"
    community_label: str | None = None  # what its `community` column means (e.g. "subreddit"), if any
    community_prefix: str = ""
    # Whether a stored checkpoint cursor means a pass stopped mid-listing (for `leakwatch status`).
    resumes_mid_listing: Callable[[str | None], bool] = _cursor_means_resume
    # The configured query set, as the weekly manifest records it.
    describe_queries: Callable[[Any], dict[str, Any]] = _queries_only
    # A minimal valid settings section (for tests and examples).
    example_settings: Mapping[str, Any] = field(default_factory=dict)
    # demo(settings) -> context manager of a DemoSession over a replay server; None: not in the demo.
    demo: Callable[[Any], AbstractContextManager[DemoSession]] | None = None


_sources: dict[str, Source] = {}
_loaded = False


def _load_builtin() -> None:
    global _loaded
    if not _loaded:
        _loaded = True
        for module in BUILTIN:
            register(import_module(module).SOURCE)


def register(source: Source) -> Source:
    """Add a source (a plug-in's or a test's); its name must be new."""
    _load_builtin()
    if source.name in _sources:
        raise ValueError(f"a source named {source.name!r} is already registered")
    if not source.name.isidentifier() or source.name == "all":
        raise ValueError(f"source name {source.name!r} must be an identifier other than 'all'")
    _sources[source.name] = source
    return source


def unregister(name: str) -> None:
    _sources.pop(name, None)


def sources() -> list[Source]:
    _load_builtin()
    return list(_sources.values())


def earliest_launch() -> date | None:
    """The first day any registered source's posts can date from (the plausible range starts there)."""
    days = [s.launched for s in sources() if s.launched is not None]
    return min(days) if days else None


def names() -> list[str]:
    return [s.name for s in sources()]


def get(name: str) -> Source:
    _load_builtin()
    try:
        return _sources[name]
    except KeyError:
        raise UnknownSource(f"unknown platform {name!r}; expected one of {', '.join(names())}") from None


def build(name: str, settings: SourceSettings, secrets: Mapping[str, str], since: datetime | None = None,
          until: datetime | None = None, **options: Any) -> Collector:
    """The collector of source `name`; `secrets` must hold every variable the source declares."""
    source = get(name)
    missing = [n for n in source.secrets if not secrets.get(n)]
    if missing:
        raise CollectorError(f"{name}: secret {', '.join(missing)} not given")
    return source.build(settings, dict(secrets), since=since, until=until, **options)

"""Corpus of Reddit and Bluesky items about the November 2024 Sora leak.

The replay servers serve these items through the real Reddit and Bluesky wire
formats, so tests and the offline demo can run the real praw / atproto clients
without network access. There are two sources of items:

* ``load_sample_corpus()``: a hand-written corpus (``data/sample_corpus.jsonl``)
  with realistic threads, edits, deletions and off-topic noise;
* ``generate_corpus()``: a deterministic synthetic corpus of any size, for
  benchmarks and load tests.

``matches()`` is the one search semantics both replay servers share.
"""

from __future__ import annotations

import base64
import hashlib
import json
import math
import random
import re
from collections.abc import Iterable
from dataclasses import dataclass, fields
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from itertools import accumulate
from pathlib import Path

SAMPLE_CORPUS_PATH = Path(__file__).with_name("data") / "sample_corpus.jsonl"

# The queries the collectors run by default; every generated root matches one.
REDDIT_DEFAULT_QUERIES = ("sora leak", "sora artists", '"PR puppets"', 'sora "hugging face"')
BLUESKY_DEFAULT_QUERIES = ("sora leak", "sora artists", '"PR puppets"', "sora openai")

GEN_START = datetime(2024, 11, 26, tzinfo=UTC)
GEN_END = datetime(2024, 12, 31, tzinfo=UTC)
SORA_RELEASE = datetime(2024, 12, 9, 18, 0, tzinfo=UTC)

PLATFORMS = ("reddit", "bluesky")
KINDS = {"reddit": ("submission", "comment"), "bluesky": ("post", "reply", "quote")}


@dataclass(frozen=True)
class Edit:
    at: datetime  # UTC, tz-aware
    text: str  # the full new text after this edit


@dataclass(frozen=True)
class CorpusItem:
    platform: str  # "reddit" | "bluesky"
    id: str  # reddit base36 id without t1_/t3_ prefix; bluesky record key (TID)
    kind: str  # reddit: submission | comment; bluesky: post | reply | quote
    author: str  # reddit username or bluesky handle
    community: str | None  # subreddit for reddit; None for bluesky
    title: str | None  # reddit submissions only
    text: str  # selftext ("" for link posts), comment body or post text
    url: str | None  # reddit link post target / bluesky external embed
    created_at: datetime  # UTC
    parent_id: str | None  # reddit comment / bluesky reply: id of the parent
    root_id: str | None  # id of the thread root (None for roots)
    quote_of: str | None  # bluesky quote posts: id of the quoted post
    lang: str  # "en", "de", "ja", ...
    score: int  # reddit score; bluesky like count
    reposts: int  # bluesky repost count; 0 on reddit
    edits: tuple[Edit, ...] = ()  # later versions of the text, in time order
    deleted_at: datetime | None = None  # when it vanished upstream
    removed: bool = False  # True: removed by a moderator; False: deleted by the author

    def __post_init__(self) -> None:
        # Accept lists from callers but keep the item hashable and immutable.
        if not isinstance(self.edits, tuple):
            object.__setattr__(self, "edits", tuple(self.edits))

    def text_at(self, when: datetime) -> str:
        """The text as it read at ``when`` (edits before then applied)."""
        for edit in reversed(self.edits):
            if edit.at <= when:
                return edit.text
        return self.text

    def edited_at(self, when: datetime) -> datetime | None:
        """Time of the latest edit made at or before ``when``."""
        for edit in reversed(self.edits):
            if edit.at <= when:
                return edit.at
        return None

    def is_deleted(self, when: datetime) -> bool:
        return self.deleted_at is not None and self.deleted_at <= when

    def visible(self, when: datetime) -> bool:
        return self.created_at <= when


# --- ids -------------------------------------------------------------------

_BASE36 = "0123456789abcdefghijklmnopqrstuvwxyz"
_TID_ALPHABET = "234567abcdefghijklmnopqrstuvwxyz"  # base32-sortable, as atproto uses


def base36(number: int) -> str:
    """Reddit-style base36 (lower case) of a non-negative integer."""
    if number < 0:
        raise ValueError("base36 needs a non-negative number")
    digits = []
    while True:
        number, rest = divmod(number, 36)
        digits.append(_BASE36[rest])
        if number == 0:
            return "".join(reversed(digits))


def make_tid(micros: int, clock_id: int = 0) -> str:
    """A 13-char atproto TID: 53 bits of microseconds, then a 10-bit clock id.

    TIDs of later times sort later as plain strings, like real record keys.
    """
    value = (micros << 10) | (clock_id & 0x3FF)
    chars = []
    for _ in range(13):
        chars.append(_TID_ALPHABET[value & 31])
        value >>= 5
    return "".join(reversed(chars))


def did_for(handle: str) -> str:
    """Deterministic fake did:plc for a handle, so servers agree on identities."""
    digest = hashlib.sha256(handle.encode("utf-8")).digest()
    return "did:plc:" + base64.b32encode(digest).decode("ascii").lower()[:24]


# --- search ----------------------------------------------------------------

# A "quoted phrase" (an unclosed quote runs to the end) or a bare word.
_QUERY_TERM = re.compile(r'"([^"]*)"?|([^\s"]+)')


def parse_query(query: str) -> list[str]:
    """Split a query into lower-case terms; a double-quoted phrase is one term."""
    terms = []
    for phrase, word in _QUERY_TERM.findall(query):
        term = " ".join((phrase or word).split()).lower()
        if term:
            terms.append(term)
    return terms


# A term starts a word: it may not follow a letter, digit or "_". Kana, CJK
# ideographs and Hangul are exempt because those scripts put no spaces between
# words ("OpenAIのSora" holds the word "Sora").
_WORD_START = r"(?<![^\W\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af])"


@lru_cache(maxsize=1024)
def _term_pattern(term: str) -> re.Pattern[str]:
    # Prefix match: "leak" finds "leaked" but not "bleak"; the words of a
    # phrase may be separated by any whitespace.
    words = (re.escape(word) for word in term.split())
    return re.compile(_WORD_START + r"\s+".join(words), re.IGNORECASE)


def matches(query: str, item: CorpusItem, when: datetime) -> bool:
    """Whether ``item`` (as it read at ``when``) is a hit for ``query``.

    Every term must occur in title + text (an empty query matches anything);
    deleted items never match. Whether the item exists yet (``visible``) is
    left to the caller.
    """
    if item.is_deleted(when):
        return False
    haystack = (item.title or "") + " " + item.text_at(when)
    return all(_term_pattern(term).search(haystack) for term in parse_query(query))


# --- JSONL -----------------------------------------------------------------

_FIELD_NAMES = tuple(f.name for f in fields(CorpusItem))


def format_time(when: datetime) -> str:
    """Format as 2024-11-26T15:04:05Z; sub-second digits only when present."""
    when = when.astimezone(UTC)
    if when.microsecond:
        return when.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    return when.strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_time(text: str) -> datetime:
    when = datetime.fromisoformat(text.replace("Z", "+00:00"))
    if when.tzinfo is None:
        raise ValueError(f"timestamp without time zone: {text!r}")
    return when.astimezone(UTC)


def item_to_dict(item: CorpusItem) -> dict[str, object]:
    data: dict[str, object] = {name: getattr(item, name) for name in _FIELD_NAMES}
    data["created_at"] = format_time(item.created_at)
    data["edits"] = [{"at": format_time(e.at), "text": e.text} for e in item.edits]
    data["deleted_at"] = format_time(item.deleted_at) if item.deleted_at is not None else None
    return data


def item_from_dict(data: dict[str, object]) -> CorpusItem:
    if set(data) != set(_FIELD_NAMES):
        extra, missing = set(data) - set(_FIELD_NAMES), set(_FIELD_NAMES) - set(data)
        raise ValueError(f"bad corpus record: extra {sorted(extra)}, missing {sorted(missing)}")
    values = dict(data)
    values["created_at"] = parse_time(str(data["created_at"]))
    values["edits"] = tuple(
        Edit(at=parse_time(e["at"]), text=e["text"])
        for e in data["edits"]  # type: ignore[union-attr]
    )
    deleted_at = data["deleted_at"]
    values["deleted_at"] = parse_time(str(deleted_at)) if deleted_at else None
    return CorpusItem(**values)  # type: ignore[arg-type]


def dump_jsonl(items: Iterable[CorpusItem], path: str | Path) -> None:
    with open(path, "w", encoding="utf-8") as out:
        for item in items:
            out.write(json.dumps(item_to_dict(item), ensure_ascii=False) + "\n")


def read_jsonl(path: str | Path) -> list[CorpusItem]:
    items = []
    with open(path, encoding="utf-8") as source:
        for number, line in enumerate(source, start=1):
            if not line.strip():
                continue
            try:
                items.append(item_from_dict(json.loads(line)))
            except (ValueError, TypeError, KeyError) as error:
                raise ValueError(f"{path}:{number}: {error}") from error
    return items


def _sort_key(item: CorpusItem) -> tuple[datetime, str]:
    return (item.created_at, item.id)


@lru_cache(maxsize=1)
def _sample_corpus() -> tuple[CorpusItem, ...]:
    return tuple(sorted(read_jsonl(SAMPLE_CORPUS_PATH), key=_sort_key))


def load_sample_corpus() -> list[CorpusItem]:
    """The hand-written sample corpus, sorted by created_at then id."""
    # Parsed once per process; items are immutable so sharing them is safe.
    return list(_sample_corpus())


# --- synthetic corpus --------------------------------------------------------
# Phrase pools for generate_corpus(). Templating is fine here: these corpora
# exist to load-test the servers and collectors, not to be read.

SUBREDDITS = ("OpenAI", "singularity", "aiwars", "ArtistHate", "StableDiffusion", "technology", "vfx")
_SUBREDDIT_CUM_WEIGHTS = tuple(accumulate((22, 18, 18, 10, 12, 14, 6)))

# Every title holds the terms of at least one REDDIT_DEFAULT_QUERIES entry.
_REDDIT_TITLES = (
    "Sora has leaked on Hugging Face",
    "Artists leak OpenAI's Sora in protest",
    "Sora leak megathread",
    "The PR Puppets open letter, in full",
    "Early-access artists say OpenAI used them as PR puppets",
    "Sora was live on Hugging Face for about three hours",
    "OpenAI pauses Sora access after the leak",
    "Why did the Sora artists leak it?",
    "Sora leaked: what we learned from the outputs",
    "Is the Sora leak a PR stunt?",
    "Sora artists were asked to work for free",
    "Thoughts on the Sora leak from a working animator",
    "Sora is out today, two weeks after the leak",
    "Sora release vs the leaked Hugging Face build",
    "Do the Sora artists have a point?",
    "OpenAI statement on the Sora leak",
    "The 'PR Puppets' and the art washing debate",
    "Sora leak: OpenAI cuts off early-access artists",
    "Hugging Face takes down the Sora space",
    "Sora artists: 'we are not your PR puppets'",
    "Leaked Sora clips are all over social media",
    "Sora's launch and the artists who leaked it",
    "Sora leak suggests the turbo model is fast",
    "What the Sora leak means for VFX jobs",
    "A week after the Sora leak",
    "Sora artists lost access. Was it worth it?",
    "Honest question about the Sora leak",
    "Sora leak timeline (with sources)",
    "The Sora artists' letter misses the point",
    "OpenAI owes the Sora artists nothing",
    "Sora on Hugging Face: a recap",
    "Unpaid Sora artists and the ethics of beta testing",
)
_TITLE_TAILS = ("", "", "", "", " (discussion)", " - thoughts?", " [News]", "?", " | megathread", " lol")

# Every hook holds the terms of at least one BLUESKY_DEFAULT_QUERIES entry.
_BLUESKY_HOOKS = (
    "Artists just leaked OpenAI's Sora on Hugging Face.",
    "The Sora leak is the story of the week.",
    '"We are not your PR puppets" - the Sora testers\' letter is worth reading.',
    "OpenAI shut Sora access down within hours of the leak.",
    "Sora artists asked to be paid. OpenAI asked them for free feedback.",
    "OpenAI's Sora is finally public.",
    "Still thinking about the PR Puppets letter.",
    "The Sora leak in one sentence: unpaid testers, paid marketing.",
    "Sora is out and OpenAI would like you to forget the leak.",
    "Everyone posting Sora clips today: remember the artists who tested it for free.",
    "OpenAI calls Sora access 'voluntary'. The artists call it art washing.",
    "Sora leak recap:",
    "Hot take on the Sora leak:",
    "The PR Puppets were right.",
    "Sora artists didn't owe OpenAI silence.",
    "OpenAI and Sora, a short thread.",
    "New piece on the Sora leak and who gets paid in AI beta programs.",
    "Sora artists vs OpenAI, round two.",
    "Reading the PR Puppets manifesto again after the Sora launch.",
    "Two weeks after the Sora leak, OpenAI ships it anyway.",
)

_PRO_ARTISTS = (
    "Testers should be paid, full stop.",
    "Hundreds of artists gave feedback for free and got a credit line at best.",
    "Unpaid R&D dressed up as an opportunity is still unpaid R&D.",
    "The letter was pretty measured, honestly.",
    "They didn't steal weights, they shared a front end for a few hours.",
    "Asking artists to polish the tool that replaces them is bleak.",
    "Consent and compensation are not radical demands.",
    "I respect them for burning the bridge.",
    "Protest is supposed to be inconvenient.",
    "If a company worth billions can't pay its testers, that says a lot.",
    "Needing approval to screen your own film is control, not collaboration.",
    "Good on them for saying it out loud.",
    "Artists have been treated as free marketing for years; this made it visible.",
    "The art washing point lands.",
    "Solidarity with the testers who spoke up.",
    "Exposure doesn't pay rent.",
)
_ANTI_ARTISTS = (
    "They signed up voluntarily and got early access to a frontier model.",
    "Breaking an NDA is not activism.",
    "Nobody forced them to join the program.",
    "This just makes it harder for every other artist to get early access.",
    "Leaking was childish and it got everyone cut off.",
    "Adapt or get left behind, that's how tech has always worked.",
    "Free access to Sora was the payment.",
    "Imagine being handed the best video model in the world and throwing a tantrum.",
    "Half of these people were in it for the clout.",
    "Cope harder, the tools are coming either way.",
    "A three-hour leak changed nothing except their own reputations.",
    "Strange hill to die on for people who volunteered.",
    "Entitled is the only word for it.",
)
_PRO_OPENAI = (
    "OpenAI was right to cut access, any company would.",
    "Honestly the outputs look incredible.",
    "Sora is a genuinely impressive model.",
    "They owe beta testers nothing beyond what was agreed.",
    "Staged rollouts exist for a reason: safety testing takes time.",
    "OpenAI handled it calmly; access was paused and that's it.",
    "Can't wait to try Sora myself.",
    "The clips look better than anything open source right now.",
    "Say what you want, they shipped it.",
    "The leak mostly proved how good the model is.",
    "Paying for Pro just for Sora, no regrets.",
)
_ANTI_OPENAI = (
    "OpenAI wants the artist stamp of approval without paying for it.",
    "Classic OpenAI: secrecy, hype, then a blog post.",
    "A company that trains on everyone's work asking artists for free labor. Wow.",
    "The 'open' in OpenAI has been a joke for years.",
    "They needed artists for the marketing reel, not for feedback.",
    "Requiring approval before artists show their own work is wild.",
    "This is what happens when a lab treats creatives as a PR channel.",
    "Another reminder that OpenAI's priority is the demo, not the people.",
    "The hype machine needed faces, and it found some unpaid ones.",
    "Months of delay while artists polished it for free says everything.",
    "I'm cancelling my subscription over this.",
)
_NEUTRAL = (
    "The Hugging Face space was up for roughly three hours.",
    "Access was cut on the evening of November 26.",
    "The leaked front end seemed to call a faster 'turbo' version.",
    "OpenAI says participation in the alpha was voluntary.",
    "The group posted an open letter alongside the space.",
    "Sora went public on December 9 for ChatGPT Plus and Pro users.",
    "Sign-ups were paused on launch day because of demand.",
    "Clips from the leak were about 10 seconds long.",
    "Some of the testers later said they disagreed with the leak.",
    "Several outlets covered it within the hour.",
    "No model weights were leaked, only access.",
    "The letter says hundreds of artists were in the program.",
    "It's not available in the EU or UK at launch.",
)
_QUESTIONS = (
    "Does anyone have an archive of the letter?",
    "Was anyone actually paid in the program?",
    "Did anyone get to generate something before it went down?",
    "Has OpenAI said anything official yet?",
    "Is there a source for that number?",
    "Will this delay the public release?",
    "How is this different from any other beta program?",
    "Did the account behind the space get banned?",
    "So what happens to the testers now?",
    "Is it available in Europe yet?",
)
_TECH = (
    "Motion coherence is still the weak spot.",
    "Physics is off in half the clips I've seen.",
    "Generating a clip took about a minute on the leaked version.",
    "The storyboard feature is the interesting part.",
    "Text in the videos is still garbage.",
    "For previs this is already good enough.",
    "Hands are better than I expected.",
    "Open models will catch up within a year anyway.",
)
_STANCE_POOLS = (_PRO_ARTISTS, _ANTI_ARTISTS, _PRO_OPENAI, _ANTI_OPENAI, _NEUTRAL, _QUESTIONS, _TECH)
_STANCE_CUM_WEIGHTS = tuple(accumulate((22, 16, 12, 20, 12, 10, 8)))
_OPENERS = (
    "Honestly?",
    "Hot take:",
    "Counterpoint:",
    "Calling it now:",
    "Unpopular opinion:",
    "Serious question.",
    "Okay.",
    "Yeah.",
    "Lol.",
    "As a working illustrator:",
    "As a software dev:",
    "As someone in VFX:",
    "Genuinely:",
    "Reminder:",
)
_SHORT_REPLIES = (
    "this",
    "based",
    "lol cope",
    "Exactly.",
    "Source?",
    "Wild.",
    "Hard agree.",
    "Nope.",
    "100%",
    "ok and?",
    "Well said.",
    "Yikes.",
    "lmao",
    "Agreed.",
    "Big if true.",
    "Not how NDAs work.",
    "Pay artists.",
    "Thank you.",
    "Same.",
    "L take.",
)
_EDIT_NOTES = (
    "EDIT: typo.",
    "EDIT: added a source.",
    "EDIT: okay, I was wrong about the NDA part.",
    "EDIT: it's out now, so this aged fast.",
    "EDIT: thanks for the replies, I've changed my mind a bit.",
    "EDIT: to be clear, I'm not defending OpenAI here.",
    "EDIT: did not expect this many replies.",
    "EDIT: the space is down now.",
)
# Non-English Bluesky text; the first sentence of each pool matches a default query.
_FOREIGN = {
    "de": (
        "Der Sora-Leak zeigt, wie OpenAI Künstler als Gratis-Werbung benutzt.",
        "Sora von OpenAI ist jetzt offiziell verfügbar.",
        "Die Künstler hinter dem Leak nennen sich PR Puppets.",
        "Ehrlich gesagt: NDA ist NDA.",
        "Tester sollten bezahlt werden.",
        "Spannend, wie schnell der Zugang gesperrt wurde.",
    ),
    "es": (
        "El leak de Sora en Hugging Face duró apenas tres horas.",
        "OpenAI lanzó Sora hoy.",
        "Los artistas que filtraron Sora se llaman PR Puppets.",
        "Que les paguen a los artistas.",
        "No entiendo el drama, firmaron un NDA.",
    ),
    "fr": (
        "Le leak de Sora : des artistes dénoncent le travail gratuit pour OpenAI.",
        "Sora d'OpenAI est enfin disponible.",
        "Les « PR Puppets » ont raison sur le fond.",
        "Payer les testeurs, c'est la base.",
    ),
    "pt": (
        "Vazaram o Sora da OpenAI no Hugging Face, um leak de protesto.",
        "O leak do Sora foi um protesto dos artistas.",
        "A OpenAI liberou o Sora hoje.",
        "Os artistas chamam isso de art washing.",
    ),
    "ja": (
        "Sora leak、アーティストたちの抗議らしい。",
        "OpenAI の Sora が正式公開された。",
        "「PR Puppets」という名前が強烈。",
        "テスターに報酬を払うべき。",
        "動画の品質はすごいけど複雑な気持ち。",
    ),
}
_FOREIGN_HOOKS = {lang: pool[:3] for lang, pool in _FOREIGN.items()}
_LINKS = (
    "https://huggingface.co/spaces/PR-Puppets/PR-Puppet-Sora",
    "https://openai.com/sora/",
    "https://sora.com/",
    "https://techcrunch.com/2024/11/26/artists-appears-to-have-leaked-access-to-openais-sora/",
    "https://www.theverge.com/2024/11/26/sora-leak-artists-openai",
    "https://arstechnica.com/ai/2024/11/artists-leak-sora/",
    "https://www.wired.com/story/openai-sora-leak-artists/",
    "https://www.theverge.com/2024/12/9/openai-sora-release",
)
_NAME_PARTS = (
    "pixel",
    "brush",
    "frame",
    "render",
    "quiet",
    "lucky",
    "neon",
    "paper",
    "ink",
    "vector",
    "glitch",
    "moss",
    "cobalt",
    "static",
    "lumen",
    "grain",
    "orbit",
    "velvet",
    "rusty",
    "tidal",
    "sketch",
    "keyframe",
    "nova",
    "ember",
    "fable",
    "cinder",
    "delta",
    "hollow",
    "maple",
    "signal",
)
_NAME_WORDS = (
    "Ambitious",
    "Fluffy",
    "Sufficient",
    "Grumpy",
    "Electrical",
    "Former",
    "Tall",
    "Careful",
    "Silent",
    "Tough",
    "Obvious",
    "Classic",
    "Clear",
    "Dense",
    "Curious",
    "Dry",
)
_NAME_NOUNS = (
    "Pie",
    "Otter",
    "Lab",
    "Bridge",
    "Sun",
    "Walrus",
    "Ad",
    "Crab",
    "Egg",
    "Grape",
    "Yak",
    "Shoe",
    "Candle",
    "Fox",
    "Tea",
    "Badger",
)
_HANDLE_DOMAINS = ("bsky.social",) * 8 + ("art", "studio", "news", "dev")

_REDDIT_SUBMISSION_BASE = int("1h50000", 36)  # disjoint from the sample corpus ids
_REDDIT_COMMENT_BASE = int("m500000", 36)
_MAX_COMMENT_DEPTH = 12
_HOUR = 3600
_DAY = 24 * _HOUR


class _Draft:
    """A mutable item under construction; parents are drafts until ids exist."""

    __slots__ = (
        "platform",
        "kind",
        "author",
        "community",
        "title",
        "text",
        "url",
        "ts",
        "parent",
        "root",
        "quote",
        "lang",
        "score",
        "reposts",
        "edits",
        "deleted_ts",
        "removed",
        "depth",
        "seq",
        "id",
    )

    def __init__(self, platform: str, kind: str, author: str, ts: int, seq: int) -> None:
        self.platform, self.kind, self.author, self.ts, self.seq = platform, kind, author, ts, seq
        self.community: str | None = None
        self.title: str | None = None
        self.text = ""
        self.url: str | None = None
        self.parent: _Draft | None = None
        self.root: _Draft | None = None
        self.quote: _Draft | None = None
        self.lang = "en"
        self.score = 0
        self.reposts = 0
        self.edits: list[tuple[int, str]] = []
        self.deleted_ts: int | None = None
        self.removed = False
        self.depth = 0
        self.id = ""


class _Generator:
    def __init__(self, rng: random.Random, start: datetime, end: datetime) -> None:
        self.rng = rng
        self.start = math.ceil(start.timestamp())  # whole seconds, as the JSONL keeps them
        self.end = int(end.timestamp())
        self.span = self.end - self.start
        # Roots start by this time, so every root has room for replies after it.
        self.root_limit = self.start + int(self.span * 0.98)
        release = int(SORA_RELEASE.timestamp()) - self.start
        self.release_offset = release if 0 <= release < self.span else None
        self.seq = 0
        self.redditors = [self._redditor() for _ in range(3000)]
        self.handles = [self._handle() for _ in range(2000)]

    # -- people and time --

    def _redditor(self) -> str:
        rng = self.rng
        style = rng.random()
        if style < 0.5:  # reddit's suggested "Adjective-Noun-1234" names
            return f"{rng.choice(_NAME_WORDS)}-{rng.choice(_NAME_NOUNS)}-{rng.randrange(1000, 10000)}"
        if style < 0.9:
            return f"{rng.choice(_NAME_PARTS)}_{rng.choice(_NAME_PARTS)}{rng.randrange(100)}"
        return f"throwaway_{rng.choice(_NAME_PARTS)}{rng.randrange(10000)}"

    def _handle(self) -> str:
        rng = self.rng
        name = f"{rng.choice(_NAME_PARTS)}-{rng.choice(_NAME_PARTS)}{rng.randrange(100)}"
        return f"{name}.{rng.choice(_HANDLE_DOMAINS)}"

    def _pick(self, people: list[str]) -> str:
        # Squaring skews toward the front: a few accounts post a lot.
        return people[int(len(people) * self.rng.random() ** 2)]

    def _root_ts(self) -> int:
        rng, span = self.rng, self.span
        roll = rng.random()
        if roll < 0.5:  # the burst right after the leak
            offset = rng.expovariate(1.0) * span * 0.08
        elif roll < 0.7 and self.release_offset is not None:  # the public release
            offset = self.release_offset + rng.expovariate(1.0) * span * 0.05
        else:
            offset = rng.random() * span
        if offset >= span * 0.98:
            offset = rng.random() * span * 0.98
        return min(self.start + int(offset), self.root_limit)

    def _after(self, ts: int, mean_seconds: float) -> int:
        """A time strictly after ``ts`` and before ``end`` when there is room."""
        room = self.end - 1 - ts
        if room <= 0:
            return ts
        delay = 1 + int(self.rng.expovariate(1.0 / mean_seconds))
        if delay > room:
            delay = 1 + int(self.rng.random() * room)
        return ts + delay

    def _reply_slot(self, parent: _Draft, root: _Draft, mean_seconds: float) -> tuple[_Draft, int]:
        """Parent and time for a reply; near ``end`` a deep chain has no time
        left, so the reply goes to the root, which always has some."""
        ts = self._after(parent.ts, mean_seconds)
        if ts > parent.ts:
            return parent, ts
        return root, self._after(root.ts, mean_seconds)

    def _draft(self, platform: str, kind: str, author: str, ts: int) -> _Draft:
        self.seq += 1
        return _Draft(platform, kind, author, ts, self.seq)

    # -- text --

    def _sentences(self, count: int) -> list[str]:
        rng = self.rng
        pool = rng.choices(_STANCE_POOLS, cum_weights=_STANCE_CUM_WEIGHTS)[0]  # one stance per item
        picked = rng.sample(pool, count)
        if picked and rng.random() < 0.25:
            picked.insert(0, rng.choice(_OPENERS))
        if rng.random() < 0.2:
            fact = rng.choice(_NEUTRAL)
            if fact not in picked:
                picked.append(fact)
        return picked

    def _comment_text(self) -> str:
        rng = self.rng
        if rng.random() < 0.15:
            return rng.choice(_SHORT_REPLIES)
        return " ".join(self._sentences(rng.randint(1, 3)))

    def _bluesky_text(self, lang: str, hook: bool) -> str:
        rng = self.rng
        if lang != "en":
            pool = _FOREIGN[lang]
            first = rng.choice(_FOREIGN_HOOKS[lang]) if hook else rng.choice(pool)
            second = rng.choice(pool)
            return first if second == first or rng.random() < 0.6 else f"{first} {second}"
        if hook:
            return _fit([rng.choice(_BLUESKY_HOOKS)] + self._sentences(rng.randint(0, 2)), 300)
        if rng.random() < 0.2:
            return rng.choice(_SHORT_REPLIES)
        return _fit(self._sentences(rng.randint(1, 3)), 300)

    # -- lifecycle: edits and deletions --

    def _add_edits(self, draft: _Draft) -> None:
        rng = self.rng
        ts, text = draft.ts, draft.text
        for number in range(rng.choice((1, 1, 1, 2))):
            later = self._after(ts, 6 * _HOUR)
            if later == ts:
                return
            label = rng.choice(_EDIT_NOTES)
            if number:  # a second edit is labelled "EDIT 2:" as people do
                label = label.replace("EDIT:", "EDIT 2:")
            ts, text = later, f"{text}\n\n{label}"
            draft.edits.append((ts, text))

    def _maybe_lifecycle(self, draft: _Draft, edit_rate: float, delete_rate: float, remove_rate: float) -> None:
        rng = self.rng
        if draft.text and rng.random() < edit_rate:
            self._add_edits(draft)
        roll = rng.random()
        if roll < delete_rate + remove_rate:
            last = draft.edits[-1][0] if draft.edits else draft.ts
            gone = self._after(last, _DAY)
            if gone > last:
                draft.deleted_ts = gone
                draft.removed = roll < remove_rate

    # -- reddit --

    def reddit(self, count: int) -> list[_Draft]:
        drafts: list[_Draft] = []
        while len(drafts) < count:
            # Heavy-tailed thread sizes: most threads are small, a few pass 200.
            size = 1 + int((self.rng.paretovariate(1.3) - 1) * 10)
            drafts.extend(self._reddit_thread(min(size, 3000, count - len(drafts))))
        return drafts

    def _reddit_thread(self, size: int) -> list[_Draft]:
        rng = self.rng
        sub = self._draft("reddit", "submission", self._pick(self.redditors), self._root_ts())
        sub.community = rng.choices(SUBREDDITS, cum_weights=_SUBREDDIT_CUM_WEIGHTS)[0]
        sub.title = rng.choice(_REDDIT_TITLES) + rng.choice(_TITLE_TAILS)
        if rng.random() < 0.3:
            sub.url = rng.choice(_LINKS)  # link post: selftext stays ""
        else:
            sentences = self._sentences(rng.randint(1, 5))
            sub.text = ("\n\n" if rng.random() < 0.3 else " ").join(sentences)
        sub.score = int(rng.paretovariate(1.1) * 3) - 2
        self._maybe_lifecycle(sub, 0.03, 0.02, 0.01)
        thread = [sub]
        for _ in range(size - 1):
            comment = self._draft("reddit", "comment", self._pick(self.redditors), 0)
            wanted = self._reddit_parent(thread)
            parent, comment.ts = self._reply_slot(wanted, sub, 3 * _HOUR if wanted is sub else 1.5 * _HOUR)
            comment.parent, comment.root, comment.depth = parent, sub, parent.depth + 1
            comment.community = sub.community
            comment.text = self._comment_text()
            comment.score = int(rng.paretovariate(1.4) * 2) - 1 - (rng.random() < 0.1) * rng.randrange(12)
            self._maybe_lifecycle(comment, 0.03, 0.025, 0.008)
            thread.append(comment)
        return thread

    def _reddit_parent(self, thread: list[_Draft]) -> _Draft:
        rng = self.rng
        roll = rng.random()
        if roll < 0.3 or len(thread) == 1:
            return thread[0]
        if roll < 0.75:  # reply to something recent: conversations form chains
            recent = min(len(thread) - 1, 30)
            parent = thread[len(thread) - 1 - int(rng.random() ** 2 * recent)]
        else:
            parent = thread[rng.randrange(1, len(thread))]
        return parent if parent.depth < _MAX_COMMENT_DEPTH else thread[0]

    # -- bluesky --

    def bluesky(self, count: int) -> list[_Draft]:
        drafts: list[_Draft] = []
        while len(drafts) < count:
            size = 1 + int((self.rng.paretovariate(1.6) - 1) * 2)
            drafts.extend(self._bluesky_thread(min(size, 500, count - len(drafts)), drafts))
        return drafts

    def _bluesky_lang(self) -> str:
        roll = self.rng.random()
        if roll < 0.92:
            return "en"
        return ("de", "es", "fr", "pt", "ja", "de", "es", "ja")[int((roll - 0.92) * 100)]

    def _bluesky_thread(self, size: int, earlier: list[_Draft]) -> list[_Draft]:
        rng = self.rng
        root = self._draft("bluesky", "post", self._pick(self.handles), 0)
        quoted = earlier[rng.randrange(len(earlier))] if earlier and rng.random() < 0.12 else None
        if quoted is not None and quoted.ts < self.root_limit:  # a quote comments on an earlier post
            root.kind, root.quote = "quote", quoted
            root.ts = min(self._after(quoted.ts, 6 * _HOUR), self.root_limit)
        else:
            root.ts = self._root_ts()
        root.lang = self._bluesky_lang()
        root.text = self._bluesky_text(root.lang, hook=True)
        if root.kind == "post" and rng.random() < 0.15:
            root.url = rng.choice(_LINKS)
        self._bluesky_counts(root, 1.1)
        self._maybe_lifecycle(root, 0.0, 0.02, 0.0)  # no edits on Bluesky in 2024
        thread = [root]
        for _ in range(size - 1):
            reply = self._draft("bluesky", "reply", self._pick(self.handles), 0)
            wanted = thread[-1] if rng.random() < 0.4 else thread[rng.randrange(len(thread))]
            reply.parent, reply.ts = self._reply_slot(wanted, root, 2 * _HOUR)
            reply.root = root
            reply.lang = root.lang if rng.random() < 0.8 else self._bluesky_lang()
            reply.text = self._bluesky_text(reply.lang, hook=False)
            self._bluesky_counts(reply, 1.6)
            self._maybe_lifecycle(reply, 0.0, 0.02, 0.0)
            thread.append(reply)
        return thread

    def _bluesky_counts(self, draft: _Draft, alpha: float) -> None:
        likes = int(self.rng.paretovariate(alpha)) - 1
        draft.score = likes
        draft.reposts = int(likes * self.rng.random() * 0.3)

    # -- ids and items --

    def finish(self, drafts: list[_Draft]) -> list[CorpusItem]:
        drafts.sort(key=lambda d: (d.ts, d.seq))
        counters = {"submission": 0, "comment": 0, "bluesky": 0}
        for draft in drafts:  # ids grow with time, as upstream
            key = "bluesky" if draft.platform == "bluesky" else draft.kind
            number = counters[key]
            counters[key] = number + 1
            if key == "submission":
                draft.id = base36(_REDDIT_SUBMISSION_BASE + number)
            elif key == "comment":
                draft.id = base36(_REDDIT_COMMENT_BASE + number)
            else:  # sub-second counter keeps TIDs unique and time-ordered
                micros = draft.ts * 1_000_000 + number % 1_000_000
                draft.id = make_tid(micros, number // 1_000_000)
        # Same order as load_sample_corpus(): created_at, then id.
        drafts.sort(key=lambda d: (d.ts, d.id))
        return [_to_item(draft) for draft in drafts]


def _fit(sentences: list[str], limit: int) -> str:
    """Join sentences, dropping trailing ones to stay within ``limit`` chars."""
    while len(sentences) > 1 and (len(" ".join(sentences)) > limit or sentences[-1] in _OPENERS):
        sentences = sentences[:-1]  # an opener must not end the text
    return " ".join(sentences)[:limit]


def _when(ts: int) -> datetime:
    return datetime.fromtimestamp(ts, UTC)


def _to_item(draft: _Draft) -> CorpusItem:
    return CorpusItem(
        platform=draft.platform,
        id=draft.id,
        kind=draft.kind,
        author=draft.author,
        community=draft.community,
        title=draft.title,
        text=draft.text,
        url=draft.url,
        created_at=_when(draft.ts),
        parent_id=draft.parent.id if draft.parent else None,
        root_id=draft.root.id if draft.root else None,
        quote_of=draft.quote.id if draft.quote else None,
        lang=draft.lang,
        score=draft.score,
        reposts=draft.reposts,
        edits=tuple(Edit(_when(ts), text) for ts, text in draft.edits),
        deleted_at=_when(draft.deleted_ts) if draft.deleted_ts is not None else None,
        removed=draft.removed,
    )


def generate_corpus(
    n: int,
    seed: int = 0,
    start: datetime = GEN_START,
    end: datetime = GEN_END,
) -> list[CorpusItem]:
    """A deterministic synthetic corpus of exactly ``n`` items (~55% Reddit).

    Same ``n`` and ``seed`` give identical items. Roots all match a default
    query; replies and comments follow their parents in time.
    """
    if n < 0:
        raise ValueError("n must be >= 0")
    if start.tzinfo is None or end.tzinfo is None:
        raise ValueError("start and end must be timezone-aware")
    if end - start < timedelta(hours=1):
        raise ValueError("the time range must span at least an hour")
    generator = _Generator(random.Random(seed), start, end)
    n_reddit = round(n * 0.55)
    drafts = generator.reddit(n_reddit) + generator.bluesky(n - n_reddit)
    return generator.finish(drafts)

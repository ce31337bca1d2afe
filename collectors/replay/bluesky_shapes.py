"""Real Bluesky record shapes for the replay server, written from the public lexicons.

The plain corpus renders every post the same simple way. Real answers are messier, and a collector
has to store all of them: image, video and external embeds (the nested `external` object may carry
its own `$type`), quotes with media (`app.bsky.embed.recordWithMedia`), richtext facets
(`app.bsky.richtext.facet`: mentions, links, tags with UTF-8 byte slices), labels and self-labels
(`com.atproto.label.defs`), missing, empty and multiple `langs`, threadgates
(`app.bsky.feed.threadgate`), createdAt strings with 0–9 fractional digits and `+00:00` offsets,
createdAt later than indexedAt (a client clock ahead), backdated posts, objects without `$type`,
fields and embed types newer than any SDK, and broken text (invalid UTF-8, escaped lone surrogates).

A `Shape` changes how one corpus item is rendered; `shaped_corpus()` is a small corpus of such
items about the Sora leak (all matching the query "sora leak", with replies), each with what a
collector must store for it (`expect`) or why it must be skipped (`skip_reason`).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from .corpus import CorpusItem, did_for, make_tid, parse_time

DROP: Any = object()  # a Shape value that removes the key from the rendered object

# Put these in an item's text: the server sends them as the broken bytes real answers carry.
INVALID_UTF8 = "\ue000"  # sent as the byte 0xFF, never valid in UTF-8
LONE_SURROGATE = "\ue001"  # sent as the JSON escape \ud800 with no low surrogate after it
INVALID_UTF8_MARK = b"\\ue000"  # how json.dumps (ASCII) writes them
LONE_SURROGATE_MARK = b"\\ue001"


@dataclass(frozen=True)
class Shape:
    record: dict[str, Any] = field(default_factory=dict)  # merged into the post record
    view: dict[str, Any] = field(default_factory=dict)  # merged into the postView
    created_at: str | None = None  # the exact createdAt string sent
    indexed_at: datetime | None = None  # when the AppView indexed it (default: when it was created)
    skip_reason: str | None = None  # why a collector must skip it; None: it must be stored
    expect: dict[str, Any] = field(default_factory=dict)  # stored values that differ from the item's


def post_uri(item: CorpusItem) -> str:
    return f"at://{did_for(item.author)}/app.bsky.feed.post/{item.id}"


def _cid(seed: str, prefix: str = "bafyrei") -> str:
    return prefix + hashlib.sha256(seed.encode()).hexdigest()[:52]


def _blob(seed: str, mime: str, size: int) -> dict[str, Any]:
    return {"$type": "blob", "ref": {"$link": _cid(seed, "bafkrei")}, "mimeType": mime, "size": size}


def _byte_slice(text: str, part: str) -> dict[str, int]:
    start = len(text[: text.index(part)].encode("utf-8"))
    return {"byteStart": start, "byteEnd": start + len(part.encode("utf-8"))}


@dataclass
class ShapedCorpus:
    items: list[CorpusItem]
    shapes: dict[str, Shape]
    blocked_ids: set[str]  # replies shown as blockedPost in threads
    hidden_ids: set[str]  # hits the search counts but does not show
    now: datetime  # a replay clock at which everything has happened

    def serve(self, **options: Any) -> Any:
        """A BlueskyReplay serving this corpus (not started)."""
        from .bluesky_api import BlueskyReplay

        replay = BlueskyReplay(self.items, now=options.pop("now", self.now), shapes=self.shapes, **options)
        replay.blocked_ids |= self.blocked_ids
        replay.hidden_ids |= self.hidden_ids
        return replay


def shaped_corpus(start: datetime = datetime(2024, 12, 2, 9, 0, tzinfo=UTC)) -> ShapedCorpus:
    items: list[CorpusItem] = []
    shapes: dict[str, Shape] = {}
    n = [0]

    def add(text: str, shape: Shape | None = None, *, minutes: float | None = None, created: datetime | None = None,
            author: str = "quill-and-ink.bsky.social", parent: CorpusItem | None = None,
            quote_of: CorpusItem | None = None, url: str | None = None, lang: str = "en",
            deleted_at: datetime | None = None, expect: dict[str, Any] | None = None,
            skip_reason: str | None = None) -> CorpusItem:
        n[0] += 1
        if skip_reason:
            shape = replace(shape or Shape(), skip_reason=skip_reason)
        if expect:
            shape = replace(shape or Shape(), expect={**(shape.expect if shape else {}), **expect})
        when = created or start + timedelta(minutes=minutes if minutes is not None else 7 * n[0])
        if shape is not None and shape.created_at and created is None:
            when = parse_time(shape.created_at)
        item = CorpusItem(
            platform="bluesky", id=make_tid(int(when.timestamp() * 1e6) + n[0], n[0]),
            kind="reply" if parent else ("quote" if quote_of else "post"),
            author=author, community=None, title=None, text=text, url=url, created_at=when,
            parent_id=parent.id if parent else None, root_id=(parent.root_id or parent.id) if parent else None,
            quote_of=quote_of.id if quote_of else None, lang=lang, score=n[0] % 9, reposts=n[0] % 4,
            deleted_at=deleted_at)
        items.append(item)
        if shape is not None:
            shapes[item.id] = shape
        return item

    # -- embeds ------------------------------------------------------------------------------------
    add("Three stills from the sora leak demo page, before it came down.", Shape(
        record={"embed": {"$type": "app.bsky.embed.images", "images": [
            {"alt": f"still {k} of a generated street scene", "image": _blob(f"img{k}", "image/jpeg", 180_000 + k),
             "aspectRatio": {"width": 1600, "height": 900}} for k in range(3)]}},
        view={"embed": {"$type": "app.bsky.embed.images#view", "images": [
            {"thumb": f"https://cdn.bsky.app/img/feed_thumbnail/plain/did:plc:x/{_cid(f'img{k}', 'bafkrei')}@jpeg",
             "fullsize": f"https://cdn.bsky.app/img/feed_fullsize/plain/did:plc:x/{_cid(f'img{k}', 'bafkrei')}@jpeg",
             "alt": f"still {k} of a generated street scene"} for k in range(3)]}}))
    video = add("Screen recording of the sora leak frontend, twelve seconds.", Shape(
        record={"embed": {"$type": "app.bsky.embed.video", "video": _blob("vid", "video/mp4", 4_800_000),
                          "alt": "a browser window generating a clip", "aspectRatio": {"width": 1280, "height": 720}}},
        view={"embed": {"$type": "app.bsky.embed.video#view", "cid": _cid("vid", "bafkrei"),
                        "playlist": "https://video.bsky.app/watch/did%3Aplc%3Ax/bafkreivid/playlist.m3u8",
                        "thumbnail": "https://video.bsky.app/watch/did%3Aplc%3Ax/bafkreivid/thumbnail.jpg"}}))
    link = "https://example.org/2024/11/sora-testers-letter"
    # The nested object carrying its own $type is legal per the lexicon, and strict SDK models refused it.
    add("The testers' open letter about the sora leak, in full:", Shape(
        record={"embed": {"$type": "app.bsky.embed.external", "external": {
            "$type": "app.bsky.embed.external#external", "uri": link, "title": "An open letter",
            "description": "Why we shared access", "thumb": _blob("thumb", "image/png", 40_000)}}},
        view={"embed": {"$type": "app.bsky.embed.external#view", "external": {
            "uri": link, "title": "An open letter", "description": "Why we shared access"}}},
        expect={"url": link}))
    add("quoting myself on the sora leak, with the screenshot this time", Shape(
        record={"embed": {"$type": "app.bsky.embed.recordWithMedia",
                          "record": {"$type": "app.bsky.embed.record", "record": {"uri": post_uri(video),
                                                                                  "cid": _cid("q1")}},
                          "media": {"$type": "app.bsky.embed.images", "images": [
                              {"alt": "", "image": _blob("shot", "image/png", 91_000)}]}}}), quote_of=video)
    article = "https://example.net/news/sora-access-revoked"
    add("sora leak follow-up: access revoked within hours, per this report", Shape(
        record={"embed": {"$type": "app.bsky.embed.recordWithMedia",
                          "record": {"record": {"uri": post_uri(video), "cid": _cid("q2")}},  # no inner $type
                          "media": {"$type": "app.bsky.embed.external", "external": {
                              "uri": article, "title": "Access revoked", "description": ""}}}}),
        quote_of=video, expect={"url": article})
    # An embed type no SDK knows yet (hypothetical), and fields newer than the lexicon.
    add("Poll: was the sora leak protest justified?", Shape(
        record={"embed": {"$type": "app.bsky.embed.poll", "options": ["yes", "no", "unsure"], "closesAt": "soon"},
                "futureField": {"nested": [1, 2, 3]}},
        view={"embed": {"$type": "app.bsky.embed.poll#view", "counts": [12, 3, 5]}, "bookmarkCount": 4}))

    # -- richtext, labels, languages, threadgates --------------------------------------------------
    text = "@studio-owl.art said it first: the sora leak is about pay. Source https://example.org/pay #SoraLeak"
    add(text, Shape(record={"facets": [
        {"index": _byte_slice(text, "@studio-owl.art"),
         "features": [{"$type": "app.bsky.richtext.facet#mention", "did": did_for("studio-owl.art")}]},
        {"index": _byte_slice(text, "https://example.org/pay"),
         "features": [{"$type": "app.bsky.richtext.facet#link", "uri": "https://example.org/pay"}]},
        {"index": _byte_slice(text, "#SoraLeak"),
         "features": [{"$type": "app.bsky.richtext.facet#tag", "tag": "SoraLeak"}]},
    ]}))
    emoji = "Café talk 🎨 about the sora leak — #アート"
    add(emoji, Shape(record={"facets": [{"index": _byte_slice(emoji, "#アート"),
                                         "features": [{"$type": "app.bsky.richtext.facet#tag", "tag": "アート"}]}]}))
    add("Graphic frames from the sora leak (warning)", Shape(
        record={"labels": {"$type": "com.atproto.label.defs#selfLabels", "values": [{"val": "graphic-media"}]}},
        view={"labels": [{"src": "did:plc:ar7c4by46qjdydhdevvrndac", "uri": "at://x", "val": "graphic-media",
                          "cts": "2024-12-02T10:00:00.000Z", "ver": 1, "neg": False}]}))
    add("sora leak: no language tag on this one", Shape(record={"langs": DROP}), expect={"language": None})
    add("sora leak: an empty language list", Shape(record={"langs": []}), expect={"language": None})
    add("sora leak は話題です / the sora leak is the topic", Shape(record={"langs": ["ja", "en"]}),
        lang="ja", expect={"language": "ja"})
    gated = add("Replies limited: my take on the sora leak and artist pay", Shape(view={"threadgate": {
        "uri": f"at://{did_for('quill-and-ink.bsky.social')}/app.bsky.feed.threadgate/3lcxyz2222222",
        "cid": _cid("gate"), "lists": [],
        "record": {"$type": "app.bsky.feed.threadgate", "post": "at://placeholder", "createdAt": "2024-12-02T11:00:00Z",
                   "allow": [{"$type": "app.bsky.feed.threadgate#mentionRule"},
                             {"$type": "app.bsky.feed.threadgate#followingRule"}]}}}))

    # -- objects without $type -----------------------------------------------------------------------
    add("sora leak (a postView without $type)", Shape(view={"$type": DROP}))
    add("sora leak (a record without $type)", Shape(record={"$type": DROP}))

    # -- createdAt strings: 0-9 fractional digits, +00:00, no zone ------------------------------------
    base = start + timedelta(hours=3)
    for digits in range(10):
        frac = "" if digits == 0 else "." + "123456789"[:digits]
        stamp = (base + timedelta(minutes=digits)).strftime("%Y-%m-%dT%H:%M:%S") + frac
        zone = "+00:00" if digits % 3 == 1 else "Z"
        add(f"sora leak timestamp with {digits} fractional digits", Shape(created_at=stamp + zone))
    add("sora leak timestamp with a +01:00 offset", Shape(created_at="2024-12-02T13:30:00.250+01:00"))

    # -- clocks: createdAt ahead of indexedAt, backdated, far future ---------------------------------
    for label, ahead in (("seconds", timedelta(seconds=40)), ("hours", timedelta(hours=5)),
                         ("days", timedelta(days=3))):
        when = start + timedelta(hours=4, minutes=len(items))
        add(f"sora leak from a phone whose clock is {label} ahead", Shape(indexed_at=when), created=when + ahead)
    add("sora leak memories (imported from an old archive)", Shape(indexed_at=start + timedelta(hours=4, minutes=30)),
        created=datetime(2023, 3, 14, 15, 9, 26, tzinfo=UTC))
    add("sora leak: posted from a device set to 2099", Shape(indexed_at=start + timedelta(hours=4, minutes=40)),
        created=datetime(2099, 1, 1, tzinfo=UTC))
    unreadable_at = start + timedelta(hours=4, minutes=45)
    add("sora leak with a createdAt nobody can read", Shape(created_at=None, record={"createdAt": "last tuesday"},
                                                            indexed_at=unreadable_at),
        created=unreadable_at, expect={"created_at": unreadable_at})

    # -- broken text ---------------------------------------------------------------------------------
    add(f"sora leak with a broken byte {INVALID_UTF8} in the middle",
        expect={"text": "sora leak with a broken byte \ufffd in the middle"})
    add(f"sora leak with half an emoji {LONE_SURROGATE} here",
        expect={"text": "sora leak with half an emoji \ufffd here"})
    odd = start + timedelta(hours=5)  # no record, so no createdAt: the index time stands in
    add("sora leak: a record that is not an object", Shape(view={"record": "not an object"}, indexed_at=odd),
        created=odd, expect={"text": "", "language": None, "created_at": odd})

    # -- what must be skipped --------------------------------------------------------------------------
    add("sora leak post without a uri", Shape(view={"uri": DROP}, skip_reason="no at:// post URI"))
    add("sora leak post with a web address for a uri", Shape(view={"uri": "https://bsky.app/profile/x/post/1"},
                                                             skip_reason="no at:// post URI"))
    add("sora leak post without an author DID", Shape(view={"author": {"handle": "nobody.bsky.social"}},
                                                      skip_reason="no author DID"))
    add("sora leak post with no readable time at all", Shape(record={"createdAt": "soon"}, view={"indexedAt": DROP}),
        skip_reason="neither createdAt nor indexedAt")

    # -- hidden hits, threads with notFoundPost and blockedPost ---------------------------------------
    hidden = {add(f"sora leak post hidden by a takedown #{k}").id for k in range(3)}
    first = add("I think the sora leak was the only way to be heard", parent=gated, author="pixel-fox.bsky.social")
    add("Agreed, and the letter says why", parent=first, author="clay-heron.art")
    blocked = add("(a reply from someone who blocked me)", parent=gated, author="grumpy-cat.bsky.social")
    gone = add("deleted reply", parent=gated, author="moss-owl.bsky.social",
               deleted_at=start + timedelta(days=1))
    add("answer to a reply that was deleted", parent=gone, author="pixel-fox.bsky.social")
    last = max(i.created_at for i in items if i.created_at.year < 2090)
    return ShapedCorpus(items, shapes, {blocked.id}, hidden, now=last + timedelta(days=2))

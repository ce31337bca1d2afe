"""Reddit items in the shapes the real API sends, for the Reddit replay server.

The sample corpus holds plain submissions and comments. Real answers also carry galleries
(`gallery_data` + `media_metadata`), Reddit-hosted video (`secure_media.reddit_video`), crossposts
(`crosspost_parent_list`), polls (`poll_data`), NSFW and spoiler flags, rich-text flair, awards,
every `removed_by_category` value, selftexts up to Reddit's 40,000-character limit, posts created
in the same second listed out of id order, and plain bad data: odd or unreadable `created_utc`
values, lone surrogates, comments without a permalink. The field layouts follow Reddit's public API
(the JSON of /r/{sub}/search, /comments/{id} and /api/morechildren); every text is written here.

`reddit_shapes()` returns the items with the fields the server sets on their JSON; `install()` puts
them on a `RedditReplayServer` (tests/test_reddit_corpus.py compares the warehouse with them).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from .corpus import CorpusItem, base36
from .reddit_api import DROP, RedditReplayServer

SHAPES_T0 = datetime(2024, 12, 10, 9, 0, tzinfo=UTC)
SHAPES_QUERY = "sora leak"  # every shaped submission matches it
SELFTEXT_LIMIT = 40_000  # Reddit's limit on a self post's text

# Created times Reddit should never send, and what leakwatch does with them.
FUTURE_TS = 4_102_444_800.0  # 2100-01-01: stored as sent, flagged created_at_in_future
PAST_TS = 86_400.0  # 1970-01-02: stored as sent, flagged created_at_before_reddit
UNREADABLE_TS = (math.nan, math.inf, 1e12)  # no representable time: skipped, counted, logged


@dataclass(frozen=True)
class Shaped:
    item: CorpusItem
    fields: dict[str, Any] = field(default_factory=dict)  # set on the item's JSON (DROP removes one)
    shape: str = ""  # which real shape this is, for messages


class _Ids:
    def __init__(self) -> None:
        self.submission = int("1hx0000", 36)
        self.comment = int("m9x0000", 36)

    def next(self, kind: str) -> str:
        if kind == "submission":
            self.submission += 1
            return base36(self.submission)
        self.comment += 1
        return base36(self.comment)


def _submission(ids: _Ids, minutes: float, title: str, text: str = "", *, community: str = "OpenAI",
                author: str = "lumen_heron", url: str | None = None, seconds: float = 0) -> CorpusItem:
    return CorpusItem(platform="reddit", id=ids.next("submission"), kind="submission", author=author,
                      community=community, title=title, text=text, url=url,
                      created_at=SHAPES_T0 + timedelta(minutes=minutes, seconds=seconds), parent_id=None,
                      root_id=None, quote_of=None, lang="en", score=40, reposts=0)


def _comment(ids: _Ids, parent: CorpusItem, minutes: float, text: str, author: str = "quiet_marten") -> CorpusItem:
    root = parent.id if parent.kind == "submission" else parent.root_id
    return CorpusItem(platform="reddit", id=ids.next("comment"), kind="comment", author=author,
                      community=parent.community, title=None, text=text, url=None,
                      created_at=SHAPES_T0 + timedelta(minutes=minutes), parent_id=parent.id, root_id=root,
                      quote_of=None, lang="en", score=5, reposts=0)


def _long_selftext() -> str:
    paragraph = ("Timeline of the Sora leak as I understand it, with the caveat that most of this comes from "
                 "the testers' own open letter and from what OpenAI said afterwards. The testers wrote that "
                 "they were asked for unpaid feedback and bug reports while the company controlled what they "
                 "could show. Access was opened for a few hours through a public front end, then closed.\n\n")
    text = (paragraph * (SELFTEXT_LIMIT // len(paragraph) + 1))[: SELFTEXT_LIMIT - 4]
    return text + " END"


def _image(media_id: str, width: int, height: int) -> dict[str, Any]:
    base = f"https://preview.redd.it/{media_id}.jpg"
    return {"status": "valid", "e": "Image", "m": "image/jpg", "id": media_id,
            "p": [{"y": round(108 * height / width), "x": 108, "u": f"{base}?width=108&format=pjpg&auto=webp"},
                  {"y": round(640 * height / width), "x": 640, "u": f"{base}?width=640&format=pjpg&auto=webp"}],
            "s": {"y": height, "x": width, "u": f"{base}?width={width}&format=pjpg&auto=webp"}}


def _award(name: str, count: int, price: int) -> dict[str, Any]:
    return {"id": f"award_{name.lower()}_{price}", "name": name, "count": count, "coin_price": price,
            "award_type": "global", "award_sub_type": "GLOBAL", "is_enabled": True, "is_new": False,
            "description": f"{name} award", "icon_url": f"https://i.redd.it/award_images/{name.lower()}.png",
            "icon_width": 2048, "icon_height": 2048, "static_icon_url": f"https://i.redd.it/{name.lower()}_s.png",
            "resized_icons": [{"url": f"https://i.redd.it/{name.lower()}_64.png", "width": 64, "height": 64}],
            "subreddit_id": None, "days_of_premium": None, "tiers_by_required_awardings": None}


def reddit_shapes() -> list[Shaped]:
    """Submissions and comments in real shapes, minutes after SHAPES_T0, all matching SHAPES_QUERY."""
    ids = _Ids()
    out: list[Shaped] = []

    def add(item: CorpusItem, shape: str, **fields: Any) -> CorpusItem:
        out.append(Shaped(item, fields, shape))
        return item

    gallery = add(_submission(ids, 0, "Sora leak: stills the testers posted before access closed",
                              url="https://www.reddit.com/gallery/placeholder"), "gallery")
    media = ["k3v9q2mr1x5e1", "p8d0w7fz2y5e1"]
    out[-1] = replace(out[-1], fields={
        "is_gallery": True, "url": f"https://www.reddit.com/gallery/{gallery.id}", "domain": "reddit.com",
        "gallery_data": {"items": [{"media_id": media[0], "id": 581_204_117, "caption": "frame from the demo"},
                                   {"media_id": media[1], "id": 581_204_118}]},
        "media_metadata": {media[0]: _image(media[0], 1920, 1080), media[1]: _image(media[1], 1080, 1350)},
        "thumbnail": f"https://b.thumbs.redditmedia.com/{gallery.id}.jpg", "thumbnail_width": 140,
    })
    add(_comment(ids, gallery, 3, "The second still is clearly a cherry-picked frame."), "comment on a gallery")

    add(_submission(ids, 5, "Clip generated during the Sora leak window", url="https://v.redd.it/7yq2k0x9l13e1"),
        "video", is_video=True, domain="v.redd.it", post_hint="hosted:video",
        secure_media={"reddit_video": {"bitrate_kbps": 2400, "fallback_url":
                                       "https://v.redd.it/7yq2k0x9l13e1/DASH_720.mp4?source=fallback",
                                       "has_audio": True, "height": 720, "width": 1280,
                                       "scrubber_media_url": "https://v.redd.it/7yq2k0x9l13e1/DASH_96.mp4",
                                       "dash_url": "https://v.redd.it/7yq2k0x9l13e1/DASHPlaylist.mpd",
                                       "duration": 21, "hls_url": "https://v.redd.it/7yq2k0x9l13e1/HLSPlaylist.m3u8",
                                       "is_gif": False, "transcoding_status": "completed"}},
        media={"reddit_video": {"fallback_url": "https://v.redd.it/7yq2k0x9l13e1/DASH_720.mp4?source=fallback",
                                "height": 720, "width": 1280, "duration": 21, "is_gif": False,
                                "transcoding_status": "completed"}},
        secure_media_embed={}, media_embed={})

    original = add(_submission(ids, 8, "Sora leak open letter, full text and signatories",
                               "The letter says testers were used for unpaid research and PR.", community="aiwars",
                               author="fern_cartographer"), "crosspost original")
    add(_submission(ids, 12, "Sora leak letter (crossposted from r/aiwars)", community="OpenAI",
                    url=f"https://www.reddit.com/r/aiwars/comments/{original.id}/"),
        "crosspost", crosspost_parent=f"t3_{original.id}",
        crosspost_parent_list=[{"id": original.id, "name": f"t3_{original.id}", "subreddit": "aiwars",
                                "title": original.title, "selftext": original.text, "author": original.author,
                                "created_utc": original.created_at.timestamp(), "score": 88, "num_comments": 14,
                                "permalink": f"/r/aiwars/comments/{original.id}/sora_leak_open_letter/",
                                "over_18": False, "is_self": True, "num_crossposts": 1,
                                "link_flair_richtext": [{"e": "text", "t": "News"}]}])

    poll_end_ms = int((SHAPES_T0 + timedelta(days=3)).timestamp() * 1000)  # Reddit gives this one in ms
    add(_submission(ids, 15, "Poll: was the Sora leak justified?", "Vote and explain below."),
        "poll", poll_data={"prediction_status": None, "total_stake_amount": None, "voting_end_timestamp": poll_end_ms,
                           "options": [{"text": "Yes, the testers had a point", "id": "29384751"},
                                       {"text": "No, it broke their agreement", "id": "29384752"},
                                       {"text": "Unsure", "id": "29384753"}],
                           "vote_updates_remained": None, "is_prediction": False, "resolved_option_id": None,
                           "user_won_amount": None, "user_selection": None, "total_vote_count": 731,
                           "tournament_id": None})

    add(_submission(ids, 18, "Sora leak outputs (some disturbing body horror)", "Marked NSFW to be safe.",
                    community="StableDiffusion"), "nsfw and spoiler", over_18=True, spoiler=True,
        thumbnail="nsfw")

    add(_submission(ids, 20, "Sora leak discussion megathread", "Keep it civil.", author="AutoModerator"),
        "flair, awards, distinguished, stickied",
        link_flair_text="Discussion", link_flair_type="richtext", link_flair_css_class="discussion",
        link_flair_template_id="5f1c4e7a-aa01-11ee-9b1a-0e1b2c3d4e5f", link_flair_background_color="#0079d3",
        link_flair_text_color="light",
        link_flair_richtext=[{"e": "emoji", "a": ":sora:", "u": "https://emoji.redditmedia.com/sora.png"},
                             {"e": "text", "t": " Discussion"}],
        author_flair_type="richtext", author_flair_text=":bot: Mod bot",
        author_flair_richtext=[{"e": "emoji", "a": ":bot:", "u": "https://emoji.redditmedia.com/bot.png"},
                               {"e": "text", "t": " Mod bot"}],
        all_awardings=[_award("Helpful", 2, 150), _award("Wholesome", 1, 125)], total_awards_received=3,
        gildings={"gid_1": 1}, gilded=1, distinguished="moderator", stickied=True, locked=False)

    add(_submission(ids, 24, "Sora leak: the complete timeline", _long_selftext(), author="archive_wren"),
        "selftext at Reddit's 40,000-character limit")

    # Every removed_by_category value Reddit documents in practice, with the text it then sends.
    categories = {"moderator": "[removed]", "automod_filtered": "[removed]", "reddit": "[removed]",
                  "anti_evil_ops": "[removed]", "community_ops": "[removed]", "legal_operations": "[removed]",
                  "copyright_takedown": "[removed]", "content_takedown": "[removed]", "author": "[deleted]",
                  "deleted": "[deleted]"}
    for n, (category, marker) in enumerate(categories.items()):
        author_gone = marker == "[deleted]"
        add(_submission(ids, 30 + n, f"Sora leak post removed ({category})", "Original words nobody saw."),
            f"removed_by_category={category}", removed_by_category=category, selftext=marker,
            **({"author": "[deleted]", "author_fullname": DROP} if author_gone else {}))

    thread = add(_submission(ids, 45, "Sora leak: ask the testers anything", "They agreed to answer questions.",
                             author="tide_lantern"), "thread with odd comments")
    kept = add(_comment(ids, thread, 46, "Were you paid at all for the testing?"), "plain comment")
    add(_comment(ids, thread, 47, "Rule 3: no personal attacks.", author="calm_gull"),
        "removed comment: [removed] with the author still present", body="[removed]")
    add(_comment(ids, thread, 48, "I was one of the testers and I stand by the letter.", author="brisk_vole"),
        "deleted account: author [deleted], text still there", author="[deleted]", author_fullname=DROP)
    add(_comment(ids, kept, 49, "No, only early access, which is the point of the letter."),
        "comment without a permalink", permalink=DROP)
    add(_comment(ids, kept, 50, "Bad clock on this one, but the words are fine.", author="odd_clock"),
        "comment created in the future", created_utc=FUTURE_TS)
    add(_comment(ids, kept, 51, "A comment from before Reddit existed, apparently.", author="odd_clock"),
        "comment created before Reddit", created_utc=PAST_TS)
    for n, stamp in enumerate(UNREADABLE_TS):
        add(_comment(ids, thread, 52 + n, f"Unreadable time number {n}.", author="odd_clock"),
            f"comment with created_utc={stamp!r}", created_utc=stamp)
    add(_comment(ids, thread, 56, "Half an emoji \ud83d here.", author="broken_glyph"),
        "lone surrogate in a comment body")

    bad = add(_submission(ids, 60, "Sora leak thread whose submission is broken", "Its created_utc is NaN."),
              "submission with created_utc=NaN", created_utc=math.nan)
    add(_comment(ids, bad, 61, "This comment is fine though."), "healthy comment under a broken submission")
    add(_submission(ids, 62, "Sora leak \udc00 title with a lone surrogate", "Body is fine.", author="broken_glyph"),
        "lone surrogate in a title")

    # Three posts in one second, which Reddit lists in no id order (middle id first).
    ties = [_submission(ids, 70, f"Sora leak same-second post {n}", f"Tie {n}.", author=f"tie_{n}") for n in range(3)]
    for rank, item in zip((1, 3, 2), ties, strict=True):
        add(item, "same-second tie", _listing_rank=rank)
    return out


def install(server: RedditReplayServer, shapes: list[Shaped]) -> None:
    """Serve the shaped items: the corpus items plus the fields and listing order set on their JSON."""
    server.add_items(s.item for s in shapes)
    for shaped in shapes:
        fields = dict(shaped.fields)
        rank = fields.pop("_listing_rank", None)
        if rank is not None:
            server.listing_rank[shaped.item.id] = rank
        if fields:
            server.extra_fields.setdefault(shaped.item.id, {}).update(fields)


def served_time(shaped: Shaped) -> float:
    """The created_utc the server sends for the item."""
    return shaped.fields.get("created_utc", shaped.item.created_at.timestamp())

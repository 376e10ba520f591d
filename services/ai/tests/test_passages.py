"""Splitting lesson text and transcripts into passages (no database)."""

from __future__ import annotations

from ai_service.passages import (
    TimedText,
    parse_transcript,
    plain_text,
    segments_from_event,
    split_text,
    split_timed,
)


def test_lesson_html_becomes_plain_text_without_markup_or_scripts():
    text = plain_text("<p>Light &amp; water</p><script>alert(1)</script><b>matter</b>.")
    assert text == "Light & water matter."


def test_text_is_split_at_sentence_ends_within_the_size():
    text = " ".join(f"Sentence number {i} is here." for i in range(30))
    parts = split_text(text, 120)
    assert len(parts) > 1
    assert all(len(p.content) <= 120 for p in parts)
    assert all(p.content.endswith(".") for p in parts)
    assert " ".join(p.content for p in parts) == text


def test_a_sentence_longer_than_a_passage_is_cut_between_words():
    parts = split_text("word " * 100, 50)
    assert all(len(p.content) <= 50 for p in parts)


def test_webvtt_cues_keep_their_times():
    pieces = parse_transcript(
        "WEBVTT\n\n1\n00:00:01.000 --> 00:00:04.500\nHello there.\n\n"
        "2\n01:02.250 --> 01:05,000\nSecond cue,\ntwo lines.\n"
    )
    assert pieces == [
        TimedText("Hello there.", 1.0, 4.5),
        TimedText("Second cue, two lines.", 62.25, 65.0),
    ]


def test_plain_transcript_has_no_times():
    assert parse_transcript("Just words. No cues.") == [TimedText("Just words. No cues.")]


def test_grouped_cues_span_from_first_start_to_last_end():
    pieces = [TimedText("One.", 0, 2), TimedText("Two.", 2, 5), TimedText("Three. " * 10, 5, 9)]
    parts = split_timed(pieces, 10)
    assert (parts[0].content, parts[0].start_seconds, parts[0].end_seconds) == ("One. Two.", 0, 5)
    assert parts[-1].end_seconds == 9


def test_transcript_segments_from_an_event_are_used_when_valid():
    assert segments_from_event([{"start": 1, "end": 2, "text": "Hi."}]) == [
        TimedText("Hi.", 1.0, 2.0)
    ]
    assert segments_from_event([{"start": "soon"}]) is None
    assert segments_from_event(None) is None

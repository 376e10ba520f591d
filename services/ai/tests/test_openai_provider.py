"""The OpenAI-compatible provider against a fake OpenAI server over real HTTP."""

from __future__ import annotations

import pytest

from ai_service.answering import Answering, ModelAnswerInvalid, ModelUnavailable
from ai_service.outputs import HintOutput
from ai_service.prompts import PromptLibrary
from ai_service.providers.base import ChatMessage, ProviderRequest, ProviderUnavailable
from ai_service.providers.circuit import HALF_OPEN, OPEN, CircuitBreaker, CircuitOpen
from ai_service.providers.offline import OfflineProvider

REQUEST = ProviderRequest(
    task="chat",
    messages=[
        ChatMessage("system", "You are a tutor."),
        ChatMessage("user", "<<<STUDENT_MESSAGE\nWhat is ATP?\nSTUDENT_MESSAGE>>>"),
    ],
    max_tokens=100,
)


async def test_plain_completion_reports_text_and_usage(fake_openai, openai_provider):
    completion = await openai_provider().complete(REQUEST)
    assert completion.text == fake_openai.reply
    assert completion.prompt_tokens == 50 and completion.completion_tokens > 0
    assert completion.model == "fake-model" and not completion.offline
    sent = fake_openai.requests[0]
    assert [m["role"] for m in sent["messages"]] == ["system", "user"]
    assert sent["max_tokens"] == 100 and sent["model"] == "fake-model"


async def test_streaming_yields_deltas_then_usage(fake_openai, openai_provider):
    deltas = [d async for d in openai_provider().stream(REQUEST)]
    text = "".join(d.text for d in deltas)
    assert text.strip() == fake_openai.reply
    assert sum(1 for d in deltas if d.text) > 3
    assert deltas[-1].prompt_tokens == 50
    assert fake_openai.requests[0]["stream"] is True


async def test_429_then_success_is_retried(fake_openai, openai_provider):
    fake_openai.script.extend([("status", 429), ("status", 503)])
    provider = openai_provider()
    completion = await provider.complete(REQUEST)
    assert completion.text == fake_openai.reply
    assert len(fake_openai.requests) == 3
    assert provider.breaker.state == "closed"


async def test_a_client_error_is_not_retried(fake_openai, openai_provider):
    fake_openai.script.append(("status", 400))
    with pytest.raises(Exception) as raised:
        await openai_provider().complete(REQUEST)
    assert not isinstance(raised.value, ProviderUnavailable)
    assert len(fake_openai.requests) == 1


async def test_a_slow_answer_times_out(fake_openai, openai_provider):
    fake_openai.script.append(("sleep", 1))
    with pytest.raises(ProviderUnavailable):
        await openai_provider(timeout=0.2, max_retries=0).complete(REQUEST)


async def test_circuit_opens_after_consecutive_failures_and_stops_calling(
    fake_openai, openai_provider
):
    clock = [0.0]
    breaker = CircuitBreaker(failure_threshold=2, reset_seconds=30, clock=lambda: clock[0])
    provider = openai_provider(max_retries=0, breaker=breaker)
    fake_openai.script.extend([("status", 500), ("status", 500)])
    for _ in range(2):
        with pytest.raises(ProviderUnavailable):
            await provider.complete(REQUEST)
    assert breaker.state == OPEN
    with pytest.raises(CircuitOpen):
        await provider.complete(REQUEST)
    assert len(fake_openai.requests) == 2  # the open circuit made no call
    clock[0] = 31.0
    assert breaker.state == HALF_OPEN
    completion = await provider.complete(REQUEST)  # the trial call succeeds: closed
    assert completion.text == fake_openai.reply and breaker.state == "closed"


def test_half_open_lets_one_trial_through_and_reopens_on_its_failure():
    clock = [0.0]
    breaker = CircuitBreaker(failure_threshold=1, reset_seconds=10, clock=lambda: clock[0])
    breaker.record_failure()
    clock[0] = 10.0
    breaker.before_call()  # the trial
    with pytest.raises(CircuitOpen):
        breaker.before_call()  # others wait for it
    breaker.record_failure()
    assert breaker.state == OPEN


def _answering(provider, *, fallback: bool) -> Answering:
    return Answering(
        provider=provider,
        offline=OfflineProvider(),
        prompts=PromptLibrary(),
        fallback_to_offline=fallback,
        max_answer_chars=2000,
    )


HINT_REQUEST = ProviderRequest(
    task="hint", messages=REQUEST.messages, question="ATP", json_output=True
)
VALID_HINTS = '{"hints": [{"level": 1, "text": "Look at the mitochondria."}]}'


async def test_invalid_json_is_repaired_once(fake_openai, openai_provider):
    fake_openai.script.extend(
        [("reply", "Sure! Here are hints: level one..."), ("reply", VALID_HINTS)]
    )
    output, completion = await _answering(openai_provider(), fallback=False).complete_structured(
        HINT_REQUEST, HintOutput
    )
    assert output.hints[0].text == "Look at the mitochondria."
    assert completion.prompt_tokens == 100  # both calls are billed
    repair = fake_openai.requests[1]["messages"]
    assert repair[-2]["role"] == "assistant" and "not valid" in repair[-1]["content"]
    assert fake_openai.requests[0]["response_format"] == {"type": "json_object"}


async def test_output_still_invalid_after_the_repair_is_a_502(fake_openai, openai_provider):
    fake_openai.script.extend([("reply", "{}"), ("reply", '{"hints": []}')])
    with pytest.raises(ModelAnswerInvalid) as raised:
        await _answering(openai_provider(), fallback=False).complete_structured(
            HINT_REQUEST, HintOutput
        )
    assert raised.value.status == 502


async def test_unavailable_model_falls_back_offline_or_answers_503(fake_openai, openai_provider):
    fake_openai.script.extend([("status", 500)] * 2)
    provider = openai_provider(max_retries=0)
    with pytest.raises(ModelUnavailable):
        await _answering(provider, fallback=False).complete(REQUEST)
    completion = await _answering(provider, fallback=True).complete(
        ProviderRequest(task="chat", messages=REQUEST.messages, question="ATP")
    )
    assert completion.offline and "unavailable" in (completion.notice or "")

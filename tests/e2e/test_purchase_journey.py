"""Buying a course: intent, Stripe's signed webhook, enrollment, refund (the central saga).

The buyer pays at Stripe (the stack's fake Stripe, as Stripe.js would confirm the
PaymentIntent); Stripe's word reaches the platform as a signed webhook through the
gateway. Everything else is a client of the gateway URL.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

SAGA_WITHIN = 2.0  # DESIGN.md §3: effects that cross services show within 2 s
PRICE = 1999
LESSONS = [
    {"title": "Spores", "content": "<p>Ferns spread by spores, not seeds.</p>"},
    {"title": "Fronds", "content": "<p>A frond unrolls from a fiddlehead.</p>"},
]


def _enrollments(journeys, user) -> list[dict]:
    response = journeys.http.get("/api/v1/enrollments", headers=user.headers)
    assert response.status_code == 200, response.text
    return response.json()["items"]


def _lessons(journeys, user, course_id: str) -> list[dict]:
    response = journeys.http.get(f"/api/v1/courses/{course_id}", headers=user.headers)
    assert response.status_code == 200, response.text
    return [lesson for section in response.json()["sections"] for lesson in section["lessons"]]


def _paid_course(journeys, instructor) -> tuple[dict, str]:
    media_id = str(uuid.uuid4())  # a lesson video's id: shown to those with access only
    lessons = [{**LESSONS[0], "media_id": media_id}, LESSONS[1]]
    course = journeys.create_course(
        instructor, title=f"Pteridology {uuid.uuid4().hex[:8]}", lessons=lessons, price=PRICE
    )
    assert (course["price"], course["currency"], course["is_published"]) == (PRICE, "usd", True)
    return course, media_id


def test_student_buys_a_course_through_stripe_and_refunds_it(
    journeys, stripe, problem, eventually, bus
):
    instructor = journeys.user("instructor")
    student, other = journeys.user("student"), journeys.user("student")
    course, media_id = _paid_course(journeys, instructor)
    course_id = course["id"]

    plans = journeys.http.get("/api/v1/payments/plans")  # public: no token
    assert plans.status_code == 200, plans.text
    assert {"free", "pro"} <= {plan["name"] for plan in plans.json()["items"]}

    # Not paid yet: the free path refuses and the lessons show their outline only.
    assert problem(journeys.enroll(student, course_id), 402)["course_id"] == course_id
    hidden = _lessons(journeys, student, course_id)
    assert [lesson["title"] for lesson in hidden] == ["Spores", "Fronds"]
    assert {(lesson["content"], lesson["media_id"]) for lesson in hidden} == {(None, None)}

    opened, key = stripe.open_intent(student, course_id)
    intent = opened.json()
    assert (intent["amount"], intent["currency"], intent["status"]) == (PRICE, "usd", "pending")
    assert intent["course_id"] == course_id
    assert intent["provider_payment_id"].startswith("pi_")
    assert intent["client_secret"]
    payment_id = intent["payment_id"]
    # The same key and body replays the first answer; without a key the open payment
    # is answered again (200) rather than a second one the buyer could also pay.
    replayed = journeys.http.post(
        "/api/v1/payments/intents",
        json={"course_id": course_id},
        headers={**student.headers, "Idempotency-Key": key},
    )
    assert replayed.status_code == 201, replayed.text
    assert replayed.headers["idempotent-replayed"] == "true"
    assert replayed.json() == intent
    other_body = journeys.http.post(
        "/api/v1/payments/intents",
        json={"course_id": str(uuid.uuid4())},
        headers={**student.headers, "Idempotency-Key": key},
    )
    problem(other_body, 422)  # the same key with another body
    again = journeys.http.post(
        "/api/v1/payments/intents", json={"course_id": course_id}, headers=student.headers
    )
    assert (again.status_code, again.json()["payment_id"]) == (200, payment_id), again.text

    # A forged or stale delivery is refused before anything happens.
    paid = stripe.pay(intent["provider_payment_id"])
    assert (paid["status"], paid["amount_received"]) == ("succeeded", PRICE)
    event = stripe.event("payment_intent.succeeded", paid)
    problem(stripe.deliver(event, secret="whsec_not_the_endpoints_secret"), 400)
    problem(stripe.deliver(event, signature="t=1,v1=" + "0" * 64), 400)
    problem(stripe.deliver(event, timestamp=int(time.time()) - 3600), 400)
    unsigned = journeys.http.post("/api/v1/payments/webhooks/stripe", json=event)
    problem(unsigned, 400)
    assert _enrollments(journeys, student) == []

    # Stripe's word: the enrollment follows within 2 s, and the lessons open.
    delivered = stripe.deliver(event)
    assert delivered.status_code == 200, delivered.text
    assert delivered.json() == {
        "received": True,
        "duplicate": False,
        "type": "payment_intent.succeeded",
    }

    def enrolled() -> dict:
        mine = _enrollments(journeys, student)
        assert len(mine) == 1, mine
        return mine[0]

    enrollment = eventually(enrolled, timeout=SAGA_WITHIN)
    assert (enrollment["course_id"], enrollment["source"]) == (course_id, payment_id)
    assert enrollment["status"] == "active"
    opened_lessons = _lessons(journeys, student, course_id)
    assert "spores, not seeds" in opened_lessons[0]["content"]
    assert opened_lessons[0]["media_id"] == media_id
    assert "fiddlehead" in opened_lessons[1]["content"]

    # Stripe delivers again (it may): acknowledged, nothing more happens.
    redelivered = stripe.deliver(event)
    assert redelivered.status_code == 200, redelivered.text
    assert redelivered.json()["duplicate"] is True
    time.sleep(0.5)  # a second grant would have travelled by now
    assert [e["id"] for e in _enrollments(journeys, student)] == [enrollment["id"]]
    # Owned now: buying it again is a conflict, not a second charge.
    problem(
        journeys.http.post(
            "/api/v1/payments/intents", json={"course_id": course_id}, headers=student.headers
        ),
        409,
    )

    history = journeys.http.get("/api/v1/payments", headers=student.headers)
    assert history.status_code == 200, history.text
    (listed,) = history.json()["items"]
    assert (listed["id"], listed["status"]) == (payment_id, "succeeded")
    assert (listed["amount"], listed["currency"], listed["course_id"]) == (PRICE, "usd", course_id)
    assert listed["succeeded_at"] and listed["refundable_until"]
    one = journeys.http.get(f"/api/v1/payments/{payment_id}", headers=student.headers)
    assert (one.status_code, one.json()["status"]) == (200, "succeeded"), one.text

    # Someone else's payment does not exist for them, not even to refund.
    problem(journeys.http.get(f"/api/v1/payments/{payment_id}", headers=other.headers), 404)
    problem(journeys.http.post(f"/api/v1/payments/{payment_id}/refund", headers=other.headers), 404)
    assert journeys.http.get("/api/v1/payments", headers=other.headers).json()["items"] == []

    # The buyer refunds within the window: Stripe refunds, the enrollment is revoked.
    refunded = journeys.http.post(f"/api/v1/payments/{payment_id}/refund", headers=student.headers)
    assert refunded.status_code == 200, refunded.text
    assert (refunded.json()["status"], refunded.json()["amount_refunded"]) == ("refunded", PRICE)
    assert refunded.json()["refunded_at"]

    def revoked() -> None:
        assert _enrollments(journeys, student) == []

    eventually(revoked, timeout=SAGA_WITHIN)
    assert {
        (lesson["content"], lesson["media_id"]) for lesson in _lessons(journeys, student, course_id)
    } == {(None, None)}
    twice = journeys.http.post(f"/api/v1/payments/{payment_id}/refund", headers=student.headers)
    assert (twice.status_code, twice.json()["status"]) == (200, "refunded"), twice.text
    # Stripe's own charge.refunded for that refund follows: a no-op, as is the success
    # delivered once more.
    charge = stripe.charge(paid["latest_charge"])
    assert (charge["refunded"], charge["amount_refunded"]) == (True, PRICE)
    charge_refunded = stripe.deliver(stripe.event("charge.refunded", charge))
    assert charge_refunded.status_code == 200, charge_refunded.text
    assert charge_refunded.json()["duplicate"] is False
    assert stripe.deliver(event).json()["duplicate"] is True
    status = journeys.http.get(f"/api/v1/payments/{payment_id}", headers=student.headers)
    assert (status.json()["status"], status.json()["amount_refunded"]) == ("refunded", PRICE)

    # What travelled on the bus, as its consumers received it (contract-checked).
    (succeeded,) = bus.wait_for(
        "payments",
        lambda e: e.type == "payment.succeeded.v1" and e.data["payment_id"] == payment_id,
    )
    assert succeeded.data["user_id"] == student.id
    assert (succeeded.data["amount"], succeeded.data["currency"]) == (PRICE, "usd")
    (refund_event,) = bus.wait_for(
        "payments",
        lambda e: e.type == "payment.refunded.v1" and e.data["payment_id"] == payment_id,
    )
    assert refund_event.data["amount"] == PRICE
    saga = bus.wait_for(
        "courses",
        lambda e: e.type.startswith("enrollment.") and e.data.get("course_id") == course_id,
        count=2,
    )
    assert [e.type for e in saga] == ["enrollment.created.v1", "enrollment.revoked.v1"]
    assert {e.data["source"] for e in saga} == {payment_id}


def test_a_declined_card_enrolls_nobody_until_another_card_pays(
    journeys, stripe, problem, eventually
):
    instructor, student = journeys.user("instructor"), journeys.user("student")
    course, _ = _paid_course(journeys, instructor)
    intent = stripe.open_intent(student, course["id"])[0].json()
    payment_id, provider_id = intent["payment_id"], intent["provider_payment_id"]

    declined = stripe.decline(provider_id)
    assert declined["last_payment_error"]["code"] == "card_declined"
    failed = stripe.deliver(stripe.event("payment_intent.payment_failed", declined))
    assert failed.status_code == 200, failed.text
    payment = journeys.http.get(f"/api/v1/payments/{payment_id}", headers=student.headers)
    assert payment.json()["status"] == "failed", payment.text
    assert payment.json()["failure_reason"] == "Your card was declined."
    refund = f"/api/v1/payments/{payment_id}/refund"
    problem(journeys.http.post(refund, headers=student.headers), 409)  # nothing paid yet

    # Stripe lets the buyer retry the same intent with another card; its success
    # arrives several times at once (Stripe retries), and is applied once.
    paid = stripe.pay(provider_id)
    event = stripe.event("payment_intent.succeeded", paid)
    with ThreadPoolExecutor(4) as pool:
        receipts = list(pool.map(lambda _: stripe.deliver(event), range(4)))
    assert [r.status_code for r in receipts] == [200] * 4, [r.text for r in receipts]
    assert sorted(r.json()["duplicate"] for r in receipts) == [False, True, True, True]

    def enrolled() -> None:
        mine = _enrollments(journeys, student)
        assert [(e["course_id"], e["source"]) for e in mine] == [(course["id"], payment_id)]

    eventually(enrolled, timeout=SAGA_WITHIN)
    payment = journeys.http.get(f"/api/v1/payments/{payment_id}", headers=student.headers)
    assert payment.json()["status"] == "succeeded", payment.text
    (listed,) = journeys.http.get("/api/v1/payments", headers=student.headers).json()["items"]
    assert listed["id"] == payment_id


def test_intents_refuse_free_own_and_unknown_courses(journeys, stripe, problem, eventually):
    instructor, student = journeys.user("instructor"), journeys.user("student")
    paid, _ = _paid_course(journeys, instructor)
    free = journeys.create_course(instructor, title=f"Mosses {uuid.uuid4().hex[:8]}")
    stripe.open_intent(student, paid["id"])  # payments knows the courses by now

    def intent(user, course_id: str):
        return journeys.http.post(
            "/api/v1/payments/intents", json={"course_id": course_id}, headers=user.headers
        )

    def free_refused() -> dict:
        return problem(intent(student, free["id"]), 409)

    body = eventually(free_refused, timeout=SAGA_WITHIN)
    assert body["enroll"]["href"] == f"/api/v1/courses/{free['id']}/enroll"
    problem(intent(instructor, paid["id"]), 409)  # one's own course
    problem(intent(student, str(uuid.uuid4())), 404)
    # A buyer who double-clicks gets one payment and one PaymentIntent.
    buyer = journeys.user("student")
    with ThreadPoolExecutor(4) as pool:
        answers = list(pool.map(lambda _: intent(buyer, paid["id"]), range(4)))
    assert {a.status_code for a in answers} <= {200, 201}, [a.text for a in answers]
    assert len({(a.json()["payment_id"], a.json()["provider_payment_id"]) for a in answers}) == 1
    history = journeys.http.get("/api/v1/payments", headers=buyer.headers).json()["items"]
    assert [p["id"] for p in history] == [answers[0].json()["payment_id"]]
    problem(journeys.http.post("/api/v1/payments/intents", json={"course_id": paid["id"]}), 401)
    problem(intent(student, "not-a-uuid"), 422)


def test_pro_subscription_raises_the_ai_limit_until_stripe_ends_it(
    journeys, stripe, problem, eventually, bus
):
    plans = {p["name"]: p for p in journeys.http.get("/api/v1/payments/plans").json()["items"]}
    free, pro = plans["free"], plans["pro"]
    assert (pro["price"], pro["currency"], pro["interval"]) == (1900, "usd", "month")
    assert pro["ai_daily_limit"] > free["ai_daily_limit"]
    student = journeys.user("student")

    def ai_limit(expected: int) -> None:
        usage = journeys.http.get("/api/v1/ai/usage", headers=student.headers)
        assert usage.status_code == 200, usage.text
        assert usage.json()["daily_limit"] == expected, usage.json()

    ai_limit(free["ai_daily_limit"])
    current = journeys.http.get("/api/v1/payments/subscriptions/me", headers=student.headers)
    assert (current.json()["id"], current.json()["plan"]) == (None, "free"), current.text

    for plan in ("free", "platinum"):
        refused = journeys.http.post(
            "/api/v1/payments/subscriptions", json={"plan": plan}, headers=student.headers
        )
        assert problem(refused, 422)["errors"]
    # The fake Stripe charges the saved card at once: active without a webhook.
    subscribed = journeys.http.post(
        "/api/v1/payments/subscriptions", json={"plan": "pro"}, headers=student.headers
    )
    assert subscribed.status_code == 201, subscribed.text
    subscription = subscribed.json()
    assert (subscription["plan"], subscription["status"]) == ("pro", "active")
    assert subscription["ai_daily_limit"] == pro["ai_daily_limit"]
    assert subscription["cancel_at_period_end"] is False
    assert subscription["current_period_end"]
    eventually(lambda: ai_limit(pro["ai_daily_limit"]), timeout=SAGA_WITHIN)
    again = journeys.http.post(
        "/api/v1/payments/subscriptions", json={"plan": "pro"}, headers=student.headers
    )
    problem(again, 409)

    # Cancelling keeps what was paid for until the period ends.
    canceled = journeys.http.delete("/api/v1/payments/subscriptions/me", headers=student.headers)
    assert canceled.status_code == 204, canceled.text
    current = journeys.http.get("/api/v1/payments/subscriptions/me", headers=student.headers)
    assert current.json()["id"] == subscription["id"]
    assert (current.json()["status"], current.json()["cancel_at_period_end"]) == ("active", True)
    time.sleep(0.3)
    ai_limit(pro["ai_daily_limit"])

    # The period is over: Stripe ends the subscription and says so; the free plan is back.
    ended = stripe.end_subscription(subscription["provider_subscription_id"])
    assert ended["status"] == "canceled"
    delivered = stripe.deliver(stripe.event("customer.subscription.deleted", ended))
    assert delivered.status_code == 200, delivered.text
    eventually(lambda: ai_limit(free["ai_daily_limit"]), timeout=SAGA_WITHIN)
    current = journeys.http.get("/api/v1/payments/subscriptions/me", headers=student.headers)
    assert (current.json()["id"], current.json()["plan"]) == (None, "free"), current.text
    problem(journeys.http.delete("/api/v1/payments/subscriptions/me", headers=student.headers), 404)

    events = bus.wait_for(
        "payments",
        lambda e: e.type.startswith("subscription.") and e.data["user_id"] == student.id,
        count=2,
    )
    assert [(e.type, e.data["plan"], e.data["ai_daily_limit"]) for e in events] == [
        ("subscription.activated.v1", "pro", pro["ai_daily_limit"]),
        ("subscription.canceled.v1", "pro", free["ai_daily_limit"]),
    ]


def test_dev_confirm_helper_pays_against_this_stack(journeys, stripe, eventually):
    """payments README: `eval "$(python -m devstack env payments)" && python -m
    payments_service confirm <payment_id>` completes a purchase offline."""
    instructor, student = journeys.user("instructor"), journeys.user("student")
    course, _ = _paid_course(journeys, instructor)
    intent = stripe.open_intent(student, course["id"])[0].json()

    printed = journeys.stack.devstack("env", "payments")
    assert printed.returncode == 0, printed.stderr
    env = dict(journeys.stack.env)
    for line in printed.stdout.splitlines():
        name, _, value = line.removeprefix("export ").partition("=")
        env[name] = json.loads(value)
    # Checked first, so that a wrong environment never reaches another stack's Stripe,
    # gateway or services on the default ports.
    assert (env["PAYMENTS_STRIPE_API_BASE"], env["PAYMENTS_WEBHOOK_URL"]) == (
        stripe.api_url,
        f"{journeys.stack.url}/api/v1/payments/webhooks/stripe",
    )
    confirmed = subprocess.run(
        [sys.executable, "-m", "payments_service", "confirm", intent["payment_id"]],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert confirmed.returncode == 0, confirmed.stderr[-2000:]

    def enrolled() -> None:
        assert [e["source"] for e in _enrollments(journeys, student)] == [intent["payment_id"]]

    eventually(enrolled, timeout=SAGA_WITHIN)

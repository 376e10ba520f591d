"""Who sees which payments: the buyer their own, an admin anyone's, others nothing."""

from __future__ import annotations

import uuid


async def test_my_history_lists_only_my_payments_newest_first_in_pages(
    client, make_user, publish_course, buy
):
    student, other = make_user(), make_user()
    mine = [await buy(student, await publish_course(price=100 * (n + 1))) for n in range(3)]
    await buy(other, await publish_course())
    first = await client.get("/api/v1/payments?limit=2", headers=student.headers)
    assert first.status_code == 200, first.text
    page = first.json()
    assert [p["id"] for p in page["items"]] == [mine[2]["payment_id"], mine[1]["payment_id"]]
    assert page["items"][0]["amount"] == 300 and page["items"][0]["currency"] == "usd"
    assert isinstance(page["items"][0]["amount"], int)
    rest = await client.get(
        f"/api/v1/payments?limit=2&cursor={page['next_cursor']}", headers=student.headers
    )
    assert [p["id"] for p in rest.json()["items"]] == [mine[0]["payment_id"]]
    assert rest.json()["next_cursor"] is None


async def test_an_admin_lists_anyones_payments(client, make_user, publish_course, buy):
    student, admin = make_user(), make_user("admin")
    payment = await buy(student, await publish_course())
    response = await client.get(f"/api/v1/payments?user_id={student.id}", headers=admin.headers)
    assert [p["id"] for p in response.json()["items"]] == [payment["payment_id"]]


async def test_a_student_cannot_list_someone_elses_payments(client, make_user):
    response = await client.get(
        f"/api/v1/payments?user_id={uuid.uuid4()}", headers=make_user().headers
    )
    assert response.status_code == 403


async def test_one_payment_is_visible_to_its_buyer_and_admins_only(
    client, make_user, publish_course, buy
):
    student = make_user()
    payment = await buy(student, await publish_course())
    url = f"/api/v1/payments/{payment['payment_id']}"
    assert (await client.get(url, headers=student.headers)).json()["status"] == "pending"
    assert (await client.get(url, headers=make_user("admin").headers)).status_code == 200
    assert (await client.get(url, headers=make_user().headers)).status_code == 404
    assert (await client.get(url, headers=make_user("instructor").headers)).status_code == 404
    missing = await client.get(f"/api/v1/payments/{uuid.uuid4()}", headers=student.headers)
    assert missing.status_code == 404


async def test_a_bad_cursor_is_a_validation_error(client, make_user):
    response = await client.get("/api/v1/payments?cursor=garbage!", headers=make_user().headers)
    assert response.status_code == 422

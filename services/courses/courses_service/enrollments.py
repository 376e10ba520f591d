"""Enrollments: granted free or by a payment, revoked by a refund; one per user and course.

The payment saga is idempotent on the payment id through ``payment_grants``:

- ``payment.succeeded.v1`` records the payment as *granted* and activates the
  enrollment (creating it, or reactivating a revoked one). The same payment again —
  a redelivery or a second event about it — finds its row and does nothing.
- ``payment.refunded.v1`` marks the payment *refunded* and revokes the enrollment,
  unless another payment of the same user for the same course still stands (it then
  becomes the enrollment's source) or the enrollment is a free one.
- A refund that arrives before its payment succeeded leaves a *refunded* row behind,
  so the late success grants nothing.
- A payment for a course this service does not know (yet) is stored all the same: the
  student paid, and access follows as soon as the course exists. The course's
  enrollment count includes such enrollments from its creation on.

Every activation and revocation writes ``enrollment.created.v1`` /
``enrollment.revoked.v1`` to the outbox in the same transaction, and updates the
course's ``enrollment_count`` with a single relative UPDATE.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import func, select, tuple_, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from courses_service.cache import touch_course
from courses_service.models import ACTIVE, REVOKED, courses, enrollments, outbox, payment_grants
from courses_service.schemas import CourseRef, Enrollment
from unpuzzle_common.errors import Conflict, PaymentRequired, ValidationFailed
from unpuzzle_common.events.outbox import add_event
from unpuzzle_common.events.schemas import (
    EnrollmentCreated,
    EnrollmentRevoked,
    PaymentRefunded,
    PaymentSucceeded,
)
from unpuzzle_common.pagination import Page, PageParams, encode_cursor

SOURCE = "courses"
FREE = "free"
GRANTED = "granted"
REFUNDED = "refunded"


async def _count(session: AsyncSession, course_id: uuid.UUID, delta: int) -> None:
    version = (
        await session.execute(
            update(courses)
            .where(courses.c.id == course_id)
            .values(enrollment_count=courses.c.enrollment_count + delta)
            .returning(courses.c.row_version)
        )
    ).scalar_one_or_none()
    # Only the count changed: pages not showing this course stay cached (cache.py).
    touch_course(session, course_id, counted_at=version)


async def activate_enrollment(
    session: AsyncSession, *, user_id: uuid.UUID, course_id: uuid.UUID, source: str
) -> tuple[Any, bool]:
    """Make ``user_id`` enrolled in ``course_id``; returns (enrollment, newly active)."""
    row = (
        await session.execute(
            insert(enrollments)
            .values(id=uuid.uuid4(), user_id=user_id, course_id=course_id, source=source)
            .on_conflict_do_nothing(index_elements=[enrollments.c.user_id, enrollments.c.course_id])
            .returning(enrollments)
        )
    ).first()
    if row is None:
        row = (
            await session.execute(
                update(enrollments)
                .where(
                    enrollments.c.user_id == user_id,
                    enrollments.c.course_id == course_id,
                    enrollments.c.status == REVOKED,
                )
                .values(status=ACTIVE, source=source, revoked_at=None, updated_at=func.now())
                .returning(enrollments)
            )
        ).first()
    if row is None:
        existing = await session.execute(
            select(enrollments).where(
                enrollments.c.user_id == user_id, enrollments.c.course_id == course_id
            )
        )
        return existing.one(), False
    await _count(session, course_id, +1)
    await add_event(
        session,
        outbox,
        EnrollmentCreated(
            enrollment_id=row.id, user_id=user_id, course_id=course_id, source=source
        ),
        source=SOURCE,
    )
    return row, True


async def revoke_enrollment(session: AsyncSession, enrollment: Any, *, reason: str) -> bool:
    """Revoke an active enrollment; False when it was not active."""
    row = (
        await session.execute(
            update(enrollments)
            .where(enrollments.c.id == enrollment.id, enrollments.c.status == ACTIVE)
            .values(status=REVOKED, revoked_at=func.now(), updated_at=func.now())
            .returning(enrollments)
        )
    ).first()
    if row is None:
        return False
    await _count(session, row.course_id, -1)
    await add_event(
        session,
        outbox,
        EnrollmentRevoked(
            enrollment_id=row.id,
            user_id=row.user_id,
            course_id=row.course_id,
            source=row.source,
            reason=reason,
        ),
        source=SOURCE,
    )
    return True


async def revoke_course_enrollments(
    session: AsyncSession, course_id: uuid.UUID, *, reason: str
) -> int:
    """Revoke every active enrollment of a course (it was deleted); how many were."""
    active = (
        await session.execute(
            select(enrollments)
            .where(enrollments.c.course_id == course_id, enrollments.c.status == ACTIVE)
            .with_for_update()
        )
    ).all()
    revoked = 0
    for enrollment in active:
        revoked += await revoke_enrollment(session, enrollment, reason=reason)
    return revoked


async def enroll_free(
    session: AsyncSession, course: Any, user_id: uuid.UUID, *, payment_path: str
) -> tuple[Any, bool]:
    """The free path: published free courses only; a paid one answers 402.

    A student who already has access (free or paid) gets the existing enrollment.
    """
    existing = (
        await session.execute(
            select(enrollments).where(
                enrollments.c.user_id == user_id,
                enrollments.c.course_id == course.id,
                enrollments.c.status == ACTIVE,
            )
        )
    ).first()
    if existing is not None:
        return existing, False
    if not course.is_published:
        raise Conflict("This course is not published; nobody can enroll yet.")
    if course.price > 0:
        raise PaymentRequired(
            "This course is paid: create a payment intent to buy it.",
            extra={
                "course_id": str(course.id),
                "price": course.price,
                "currency": course.currency,
                "payment": {
                    "method": "POST",
                    "href": payment_path,
                    "body": {"course_id": str(course.id)},
                },
            },
        )
    return await activate_enrollment(session, user_id=user_id, course_id=course.id, source=FREE)


async def grant_paid_enrollment(session: AsyncSession, payment: PaymentSucceeded) -> None:
    """Apply ``payment.succeeded.v1`` (see the module documentation)."""
    recorded = (
        await session.execute(
            insert(payment_grants)
            .values(
                payment_id=payment.payment_id,
                user_id=payment.user_id,
                course_id=payment.course_id,
                status=GRANTED,
            )
            .on_conflict_do_nothing(index_elements=[payment_grants.c.payment_id])
            .returning(payment_grants.c.payment_id)
        )
    ).first()
    if recorded is None:
        return  # already granted, or refunded before it succeeded
    await activate_enrollment(
        session,
        user_id=payment.user_id,
        course_id=payment.course_id,
        source=str(payment.payment_id),
    )


async def revoke_paid_enrollment(session: AsyncSession, refund: PaymentRefunded) -> None:
    """Apply ``payment.refunded.v1`` (see the module documentation)."""
    lock = select(payment_grants).where(payment_grants.c.payment_id == refund.payment_id)
    grant = (await session.execute(lock.with_for_update())).first()
    if grant is None:
        remembered = (
            await session.execute(
                insert(payment_grants)
                .values(
                    payment_id=refund.payment_id,
                    user_id=refund.user_id,
                    course_id=refund.course_id,
                    status=REFUNDED,
                    refunded_at=func.now(),
                )
                .on_conflict_do_nothing(index_elements=[payment_grants.c.payment_id])
                .returning(payment_grants.c.payment_id)
            )
        ).first()
        if remembered is not None:
            return  # refunded before it succeeded: the success will grant nothing
        grant = (await session.execute(lock.with_for_update())).one()
    if grant.status == REFUNDED:
        return
    await session.execute(
        update(payment_grants)
        .where(payment_grants.c.payment_id == grant.payment_id)
        .values(status=REFUNDED, refunded_at=func.now())
    )
    enrollment = (
        await session.execute(
            select(enrollments)
            .where(
                enrollments.c.user_id == grant.user_id, enrollments.c.course_id == grant.course_id
            )
            .with_for_update()
        )
    ).first()
    if enrollment is None or enrollment.status != ACTIVE or enrollment.source == FREE:
        return
    other = (
        await session.execute(
            select(payment_grants.c.payment_id)
            .where(
                payment_grants.c.user_id == grant.user_id,
                payment_grants.c.course_id == grant.course_id,
                payment_grants.c.status == GRANTED,
            )
            .order_by(payment_grants.c.created_at)
            .limit(1)
        )
    ).scalar_one_or_none()
    if other is not None:
        # Another payment for the same course still stands: access stays, paid by it.
        await session.execute(
            update(enrollments)
            .where(enrollments.c.id == enrollment.id)
            .values(source=str(other), updated_at=func.now())
        )
        return
    await revoke_enrollment(session, enrollment, reason="refunded")


async def my_enrollments(
    session: AsyncSession, user_id: uuid.UUID, page: PageParams
) -> Page[Enrollment]:
    """The caller's active enrollments in live courses, newest first."""
    query = (
        select(enrollments, courses.c.slug, courses.c.title)
        .join(courses, courses.c.id == enrollments.c.course_id)
        .where(
            enrollments.c.user_id == user_id,
            enrollments.c.status == ACTIVE,
            courses.c.deleted_at.is_(None),
        )
        .order_by(enrollments.c.created_at.desc(), enrollments.c.id.desc())
        .limit(page.limit + 1)
    )
    if page.after is not None:
        try:
            after = (datetime.fromisoformat(page.after["t"]), uuid.UUID(page.after["id"]))
        except (KeyError, TypeError, ValueError) as exc:
            raise ValidationFailed.field("cursor", "not a valid cursor") from exc
        query = query.where(tuple_(enrollments.c.created_at, enrollments.c.id) < after)
    rows = list(await session.execute(query))
    items = [
        enrollment_out(r, course=CourseRef(id=r.course_id, slug=r.slug, title=r.title))
        for r in rows[: page.limit]
    ]
    next_cursor = None
    if len(rows) > page.limit:
        last = rows[page.limit - 1]
        next_cursor = encode_cursor({"t": last.created_at.isoformat(), "id": str(last.id)})
    return Page[Enrollment](items=items, next_cursor=next_cursor)


def enrollment_out(row: Any, *, course: CourseRef | None = None) -> Enrollment:
    return Enrollment(
        id=row.id,
        user_id=row.user_id,
        course_id=row.course_id,
        source=row.source,
        status=row.status,
        created_at=row.created_at,
        revoked_at=row.revoked_at,
        completed_at=row.completed_at,
        course=course,
    )

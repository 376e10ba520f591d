"""Categories of the catalog: everyone lists them, admins create them."""

from __future__ import annotations

from fastapi import APIRouter, Depends

from courses_service import categories
from courses_service.api.deps import CoursesContext, courses_context
from courses_service.schemas import Category, CategoryCreate
from unpuzzle_common.auth import ADMIN, Principal, require_roles
from unpuzzle_common.pagination import Page, PageParams, make_page, page_params

router = APIRouter(prefix="/api/v1/categories", tags=["categories"])


@router.get("", response_model=Page[Category])
async def list_categories(
    page: PageParams = Depends(page_params), ctx: CoursesContext = Depends(courses_context)
):
    """All categories, by name."""
    async with ctx.sessions() as session:
        rows = await categories.list_categories(session, page)
    items = [Category.model_validate(r, from_attributes=True) for r in rows]
    return make_page(items, page, lambda c: {"name": c.name, "id": str(c.id)})


@router.post("", response_model=Category, status_code=201)
async def create_category(
    body: CategoryCreate,
    _admin: Principal = Depends(require_roles(ADMIN)),
    ctx: CoursesContext = Depends(courses_context),
):
    """Create a category (admin). 409 when the name or slug is taken."""
    async with ctx.unit_of_work() as session:
        row = await categories.create_category(
            session, name=body.name, slug=body.slug, description=body.description
        )
    return Category.model_validate(row, from_attributes=True)

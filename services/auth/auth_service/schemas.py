"""Request and response bodies of the auth API."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Literal

import nh3
from pydantic import AnyHttpUrl, BaseModel, ConfigDict, EmailStr, Field, field_validator


class Strict(BaseModel):
    """Request bodies refuse unknown fields, so typos are reported, not ignored."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


def _plain_text(value: str) -> str:
    # Names are shown in other people's pages: no markup at all survives.
    return nh3.clean(value, tags=set()).strip()


class SignupRequest(Strict):
    email: EmailStr = Field(max_length=254)
    password: str = Field(min_length=1, max_length=1024)
    full_name: str = Field(min_length=1, max_length=200)
    role: Literal["student", "instructor"] = "student"

    _clean_name = field_validator("full_name")(_plain_text)


class SigninRequest(Strict):
    email: str = Field(min_length=1, max_length=254)
    password: str = Field(min_length=1, max_length=1024)


class RefreshRequest(Strict):
    refresh_token: str = Field(min_length=1, max_length=512)


class ForgotPasswordRequest(Strict):
    email: EmailStr = Field(max_length=254)


class ResetPasswordRequest(Strict):
    token: str = Field(min_length=1, max_length=512)
    new_password: str = Field(min_length=1, max_length=1024)


class ProfileUpdate(Strict):
    full_name: str | None = Field(default=None, min_length=1, max_length=200)
    bio: str | None = Field(default=None, max_length=5000)
    avatar_url: AnyHttpUrl | None = Field(default=None)

    _clean_name = field_validator("full_name")(lambda v: _plain_text(v) if v is not None else v)

    @field_validator("bio")
    @classmethod
    def _clean_bio(cls, value: str | None) -> str | None:
        # A bio may keep light formatting; anything scriptable is removed.
        if value is None:
            return None
        return nh3.clean(value, tags={"b", "i", "em", "strong", "p", "br", "ul", "ol", "li", "a"})


class RolesUpdate(Strict):
    roles: list[str] = Field(min_length=1, max_length=3)


class User(BaseModel):
    id: uuid.UUID
    email: str
    full_name: str
    bio: str
    avatar_url: str | None
    roles: list[str]
    created_at: datetime
    updated_at: datetime


class Tokens(BaseModel):
    access_token: str
    refresh_token: str
    token_type: Literal["bearer"] = "bearer"
    expires_in: int


class AuthResult(Tokens):
    user: User


class Session(BaseModel):
    id: uuid.UUID
    created_at: datetime
    last_used_at: datetime
    expires_at: datetime
    user_agent: str
    ip_address: str
    current: bool


class SessionList(BaseModel):
    items: list[Session]


def user_out(row: object) -> User:
    return User.model_validate(row, from_attributes=True)

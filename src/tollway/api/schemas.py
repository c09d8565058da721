"""Admin wire types: separate Create and Read shapes."""

from __future__ import annotations

from typing import Annotated, Literal

from msgspec import Meta, Struct

from tollway.accounts import ApiKey, Workspace
from tollway.clock import iso
from tollway.money import format_usd

__all__ = ["KeyCreate", "KeyRead", "WorkspaceCreate", "WorkspaceRead"]

Name = Annotated[str, Meta(min_length=1, max_length=200)]


class WorkspaceCreate(Struct, forbid_unknown_fields=True):
    name: Name


class KeyCreate(Struct, forbid_unknown_fields=True, kw_only=True):
    name: Name = "default"
    spend_limit_usd: str | None = None
    spend_limit_period: Literal["total", "day", "month"] = "total"


class WorkspaceRead(Struct, kw_only=True):
    id: str
    name: str
    created_at: str
    object: str = "workspace"

    @classmethod
    def of(cls, workspace: Workspace) -> WorkspaceRead:
        return cls(id=workspace.id, name=workspace.name, created_at=iso(workspace.created_at))


class KeyRead(Struct, kw_only=True, omit_defaults=True):
    id: str
    workspace_id: str
    name: str
    key_prefix: str
    spend_limit_usd: str | None
    spend_limit_period: str
    created_at: str
    revoked: bool
    revoked_at: str | None = None
    key: str | None = None  # the secret, present only in the creation response
    object: str = "api_key"

    @classmethod
    def of(cls, key: ApiKey, secret: str | None = None) -> KeyRead:
        return cls(
            id=key.id,
            workspace_id=key.workspace_id,
            name=key.name,
            key_prefix=key.key_prefix,
            spend_limit_usd=None if key.spend_limit_nano is None else format_usd(key.spend_limit_nano),
            spend_limit_period=key.spend_limit_period,
            created_at=iso(key.created_at),
            revoked=key.revoked_at is not None,
            revoked_at=None if key.revoked_at is None else iso(key.revoked_at),
            key=secret,
        )

"""Users over HTTP: ``whoami``, the list of users, adding one, a new token, disabling and enabling one,
changing their roles.

A token is in the answer that makes it (adding a user, a new token) and nowhere else, as on the command
line.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Request
from pydantic import BaseModel, Field

from dispatcher import identity
from dispatcher.identity import User
from dispatcher.web.auth import READ, acting, ledger_of

router = APIRouter(tags=["users"])
UserName = Annotated[str, Path(min_length=1, max_length=100)]


@router.get("/whoami")
def whoami(user: Annotated[User, Depends(acting(READ))]) -> dict[str, Any]:
    """The user the token belongs to, and their roles."""
    return {"name": user.name, "roles": sorted(user.roles)}


class NewUser(BaseModel):
    name: str = Field(min_length=1, max_length=100)
    roles: list[str] = Field(
        min_length=1, max_length=10, description="author, approver, operator, auditor, admin"
    )


class Issued(BaseModel):
    """A user and their new token: shown in this answer only."""

    name: str
    roles: list[str]
    token: str


@router.get("/users")
def listing(user: Annotated[User, Depends(acting(READ))], request: Request) -> list[dict[str, Any]]:
    """Every user and their roles, never a token (an admin or an auditor)."""
    if not (user.may("users") or user.may("ledger")):
        user.require("users")
    return identity.listing(ledger_of(request))


@router.post("/users", status_code=201)
def add(user: Annotated[User, Depends(acting("users"))], new: NewUser, request: Request) -> Issued:
    """Add a user (admin only); the answer holds their token, once."""
    issued = identity.add(ledger_of(request), user, new.name, identity.roles_of(new.roles))
    return Issued(name=issued.user.name, roles=sorted(issued.user.roles), token=issued.token)


@router.post("/users/{name}/token")
def new_token(user: Annotated[User, Depends(acting(READ))], name: UserName, request: Request) -> Issued:
    """A new token for ``name`` (the old one stops working): by an admin, or by the user themselves."""
    issued = identity.new_token(ledger_of(request), user, name)
    return Issued(name=issued.user.name, roles=sorted(issued.user.roles), token=issued.token)


class Roles(BaseModel):
    roles: list[str] = Field(
        min_length=1, max_length=10, description="author, approver, operator, auditor, admin"
    )


@router.put("/users/{name}/roles")
def set_roles(
    user: Annotated[User, Depends(acting("users"))], name: UserName, wanted: Roles, request: Request
) -> dict[str, Any]:
    """Give a user exactly these roles (admin only); the last admin keeps that role."""
    done = identity.set_roles(ledger_of(request), user, name, identity.roles_of(wanted.roles))
    return {"name": done.name, "roles": sorted(done.roles)}


@router.post("/users/{name}/enable")
def enable(user: Annotated[User, Depends(acting("users"))], name: UserName, request: Request) -> Issued:
    """Let a disabled user back in (admin only); the answer holds their new token, once."""
    issued = identity.enable(ledger_of(request), user, name)
    return Issued(name=issued.user.name, roles=sorted(issued.user.roles), token=issued.token)


@router.post("/users/{name}/disable")
def disable(
    user: Annotated[User, Depends(acting("users"))], name: UserName, request: Request
) -> dict[str, Any]:
    """Turn a user away from now on (admin only); their name stays on the record."""
    done = identity.disable(ledger_of(request), user, name)
    return {"name": done.name, "state": "disabled"}

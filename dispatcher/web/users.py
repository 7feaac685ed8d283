"""Users over HTTP: ``whoami``, the list of users, adding one, a new token, disabling one.

A token is in the answer that makes it (adding a user, a new token) and nowhere else, as on the command
line.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends

from dispatcher.identity import User
from dispatcher.web.auth import READ, acting

router = APIRouter(tags=["users"])


@router.get("/whoami")
def whoami(user: Annotated[User, Depends(acting(READ))]) -> dict[str, Any]:
    """The user the token belongs to, and their roles."""
    return {"name": user.name, "roles": sorted(user.roles)}

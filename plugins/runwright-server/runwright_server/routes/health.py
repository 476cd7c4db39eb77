"""``GET /health``: no authentication."""

from __future__ import annotations

from fastapi import APIRouter

from runwright_server.schemas import HealthOut

router = APIRouter(tags=["health"])


@router.get("/health", response_model=HealthOut)
def health() -> dict[str, str]:
    return {"status": "ok"}

"""``/api/v1/tokens``: API tokens, for admins. A token's value is shown once, when created."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path

from pipeline.access import parse_role
from pipeline.api import _examples as ex
from pipeline.api.deps import ActorDep, Allowed, SessionDep
from pipeline.api.params import MAX_ID
from pipeline.api.problems import problem_responses
from pipeline.api.schemas import NewToken, TokenOut, TokenRequest
from pipeline.store import tokens

router = APIRouter(
    prefix="/api/v1/tokens",
    tags=["tokens"],
    dependencies=[Depends(Allowed("admin"))],
    responses=problem_responses(
        400, 401, 403, 404, 422, examples={403: ex.forbidden(ex.BUILDER_TOKEN, "builder", "admin")}
    ),
)
TokenId = Annotated[
    int, Path(ge=1, le=MAX_ID, description="the token's id, as listed by GET /api/v1/tokens", examples=[ex.TOKEN_ID])
]


@router.post(
    "",
    response_model=NewToken,
    status_code=201,
    summary="Create a token (its value is shown only now)",
    description=(
        "Creates an API token with a role (viewer, builder, promoter or admin; a promoter may be "
        "limited to some environments) and answers its value in `token`: only now, as only a hash is "
        "stored. The name is the actor recorded on everything the token does. Needs an admin token."
    ),
    responses=problem_responses(
        422, examples={422: {"detail": "role must be one of viewer, builder, promoter, admin, not 'owner'"}}
    ),
)
def create_token(body: TokenRequest, session: SessionDep, actor: ActorDep) -> NewToken:
    role, environments = parse_role(body.role, body.environments)
    row, secret = tokens.create_token(
        session, name=body.name, role=role, environments=list(environments) if environments else None, created_by=actor
    )
    return NewToken(token=secret, **TokenOut.model_validate(row).model_dump())


@router.get(
    "",
    response_model=list[TokenOut],
    summary="Every token, revoked ones included (values never shown)",
    description=(
        "Every API token by id, with its role, who created it and when it was last used; revoked ones "
        "stay listed with `revoked_at`. A token's value is never shown, only its first characters "
        "(`prefix`). Needs an admin token."
    ),
    responses={200: {"content": {"application/json": {"example": ex.TOKENS}}}},
)
def list_tokens(session: SessionDep) -> list[TokenOut]:
    return [TokenOut.model_validate(row) for row in tokens.list_tokens(session)]


@router.post(
    "/{token_id}/revoke",
    response_model=TokenOut,
    summary="Revoke a token for good",
    description=(
        "Revokes the token: from now on every request with it is answered 401. A revoked token cannot be "
        "restored; create a new one. Answers the token with `revoked_at` set. Needs an admin token."
    ),
    responses={
        200: {"content": {"application/json": {"example": ex.JUST_REVOKED}}},
        **problem_responses(404, examples={404: {"detail": "no API token with id 12"}}),
    },
)
def revoke_token(token_id: TokenId, session: SessionDep) -> TokenOut:
    return TokenOut.model_validate(tokens.revoke_token(session, token_id))

"""``/api/v1/tokens``: API tokens, for admins. A token's value is shown once, when created."""

from __future__ import annotations

from fastapi import APIRouter, Depends

from pipeline.access import parse_role
from pipeline.api.deps import ActorDep, Allowed, SessionDep
from pipeline.api.params import Id
from pipeline.api.problems import problem_responses
from pipeline.api.schemas import NewToken, TokenOut, TokenRequest
from pipeline.store import tokens

router = APIRouter(prefix="/api/v1/tokens", tags=["tokens"], dependencies=[Depends(Allowed("admin"))],
                   responses=problem_responses(400, 401, 403, 404, 422))


@router.post("", response_model=NewToken, status_code=201, summary="Create a token (its value is shown only now)")
def create_token(body: TokenRequest, session: SessionDep, actor: ActorDep) -> NewToken:
    role, environments = parse_role(body.role, body.environments)
    row, secret = tokens.create_token(session, name=body.name, role=role,
                                      environments=list(environments) if environments else None, created_by=actor)
    return NewToken(token=secret, **TokenOut.model_validate(row).model_dump())


@router.get("", response_model=list[TokenOut], summary="Every token, revoked ones included (values never shown)")
def list_tokens(session: SessionDep) -> list[TokenOut]:
    return [TokenOut.model_validate(row) for row in tokens.list_tokens(session)]


@router.post("/{token_id}/revoke", response_model=TokenOut, summary="Revoke a token for good",
             responses=problem_responses(404))
def revoke_token(token_id: Id, session: SessionDep) -> TokenOut:
    return TokenOut.model_validate(tokens.revoke_token(session, token_id))

"""``pipeline keys``: make the cosign key pair the service signs promoted images with.

The pair is cosign's own format, so the same files work with ``cosign sign --key`` and the
public half is what anyone checks our signatures with, using cosign alone.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Annotated

import typer

from pipeline.errors import SigningError

__all__ = ["keys_app"]

keys_app = typer.Typer(help="Cosign-compatible signing keys.", no_args_is_help=True)


def _interactive() -> bool:
    return sys.stdin.isatty()


def generate_key_pair(directory: Path, password: bytes) -> tuple[Path, Path]:
    """``pipeline.signing.generate_key_pair``, imported when used: the signing stack (cryptography,
    the registry client) was most of every CLI command's start-up time, and only this one needs it."""
    from pipeline.signing import generate_key_pair as generate

    return generate(directory, password)


def _read_password() -> bytes:
    """COSIGN_PASSWORD if set (even empty, as cosign reads it), else ask twice on a terminal."""
    from pipeline.signing import PASSWORD_ENV, password_from_env

    if PASSWORD_ENV in os.environ:
        return password_from_env()
    if not _interactive():
        raise SigningError(
            f"{PASSWORD_ENV} is not set and there is no terminal to ask on: "
            f"export {PASSWORD_ENV} (empty for a key without password)"
        )
    password: str = typer.prompt(
        "Enter password for private key",
        default="",
        show_default=False,
        hide_input=True,
        confirmation_prompt="Enter password for private key again",
    )
    return password.encode("utf-8")


OutputDir = Annotated[
    Path, typer.Option("--output-dir", "-o", file_okay=False, help="Directory for cosign.key and cosign.pub.")
]


@keys_app.command("generate")
def generate_command(output_dir: OutputDir = Path(".")) -> None:
    """Write a new cosign.key (encrypted, mode 0600) and cosign.pub; never overwrite."""
    key_path, pub_path = generate_key_pair(output_dir, _read_password())
    typer.echo(f"Private key written to {key_path}")
    typer.echo(f"Public key written to {pub_path}")
    typer.echo("Anyone can check a signed image with cosign alone (our signatures make no transparency log entry):")
    typer.echo(f"  cosign verify --key {pub_path} --insecure-ignore-tlog=true IMAGE@DIGEST")

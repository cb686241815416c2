"""Credentials from Docker's config.json and from real credential-helper programs.

The helpers are real executables (small shell scripts named ``docker-credential-testhelper``
on a PATH set for the test), run exactly as Docker runs them: ``get``, the server address on
stdin, JSON on stdout. Each one logs its arguments and stdin so the protocol can be checked.
"""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from pipeline.config import RegistryConfig
from pipeline.errors import RegistryAuthError
from pipeline.registry._credentials import (
    Credentials,
    docker_config_credentials,
    resolve_credentials,
)

Helper = Callable[[str], Path]  # writes the helper script's body, returns its log

HOST = "registry.example.com:5000"
SECRET = "s3cr3t:with:colons"
TOKEN = "identity-token-0123456789"


def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def _config(directory: Path, data: object) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    text = data if isinstance(data, str) else json.dumps(data)
    (directory / "config.json").write_text(text)
    return directory


@pytest.fixture(autouse=True)
def _no_ambient_docker_config(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Never read the developer's own ~/.docker or $DOCKER_CONFIG."""
    monkeypatch.delenv("DOCKER_CONFIG", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))


# -- auths in config.json --------------------------------------------------------------------


@pytest.mark.parametrize(
    "key", [HOST, f"https://{HOST}", f"http://{HOST}", f"https://{HOST}/v1/", f"https://{HOST}/v2/"]
)
def test_auths_entry_under_each_spelling_docker_uses(tmp_path: Path, key: str) -> None:
    config = _config(tmp_path / "docker", {"auths": {key: {"auth": _b64(f"alice:{SECRET}")}}})
    assert docker_config_credentials(HOST, config) == Credentials("alice", SECRET)


@pytest.mark.parametrize("key", ["https://index.docker.io/v1/", "index.docker.io", "registry-1.docker.io", "docker.io"])
@pytest.mark.parametrize("host", ["docker.io", "index.docker.io", "registry-1.docker.io"])
def test_docker_hub_is_found_under_any_of_its_names(tmp_path: Path, key: str, host: str) -> None:
    config = _config(tmp_path / "docker", {"auths": {key: {"auth": _b64("hubuser:hubpass")}}})
    assert docker_config_credentials(host, config) == Credentials("hubuser", "hubpass")


def test_the_exact_host_wins_and_other_hosts_do_not_match(tmp_path: Path) -> None:
    config = _config(
        tmp_path / "docker",
        {
            "auths": {
                f"https://{HOST}/v1/": {"auth": _b64("legacy:old")},
                HOST: {"auth": _b64("alice:new")},
                "registry.example.com": {"auth": _b64("other:port")},  # another port: another registry
                "evil.example.com": {"auth": _b64("mallory:x")},
            }
        },
    )
    assert docker_config_credentials(HOST, config) == Credentials("alice", "new")
    assert docker_config_credentials("registry.example.com", config) == Credentials("other", "port")
    assert docker_config_credentials("unknown.example.com", config) is None
    assert docker_config_credentials("docker.io", config) is None


def test_auth_with_colons_in_the_password_and_username_fields(tmp_path: Path) -> None:
    config = _config(
        tmp_path / "docker",
        {
            "auths": {
                HOST: {"auth": _b64(f"alice:{SECRET}")},
                "plain.example.com": {"username": "bob", "password": "pw:1"},
            }
        },
    )
    assert docker_config_credentials(HOST, config) == Credentials("alice", SECRET)
    assert docker_config_credentials("plain.example.com", config) == Credentials("bob", "pw:1")


def test_identitytoken_is_kept_beside_the_user(tmp_path: Path) -> None:
    # What `docker login` writes when the token service answered with a refresh token.
    config = _config(tmp_path / "docker", {"auths": {HOST: {"auth": _b64("alice:"), "identitytoken": TOKEN}}})
    found = docker_config_credentials(HOST, config)
    assert found == Credentials("alice", "", TOKEN)
    assert found is not None and found.identity_token == TOKEN


def test_empty_entries_and_a_missing_file_mean_no_credentials(tmp_path: Path) -> None:
    assert docker_config_credentials(HOST, tmp_path / "nowhere") is None
    config = _config(tmp_path / "docker", {"auths": {HOST: {}}})  # Docker Desktop leaves these
    assert docker_config_credentials(HOST, config) is None
    assert docker_config_credentials(HOST, _config(tmp_path / "empty", {})) is None


def test_docker_config_env_and_home_are_honoured(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _config(tmp_path / "home" / ".docker", {"auths": {HOST: {"auth": _b64("home:pw")}}})
    assert docker_config_credentials(HOST) == Credentials("home", "pw")
    env_dir = _config(tmp_path / "env-docker", {"auths": {HOST: {"auth": _b64("env:pw")}}})
    monkeypatch.setenv("DOCKER_CONFIG", str(env_dir))
    assert docker_config_credentials(HOST) == Credentials("env", "pw")
    explicit = _config(tmp_path / "explicit", {"auths": {HOST: {"auth": _b64("arg:pw")}}})
    assert docker_config_credentials(HOST, explicit) == Credentials("arg", "pw")


def test_malformed_json_names_the_file_and_not_the_secret(tmp_path: Path) -> None:
    truncated = json.dumps({"auths": {HOST: {"auth": _b64(f"alice:{SECRET}")}}})[:-1]
    config = _config(tmp_path / "docker", truncated)
    with pytest.raises(RegistryAuthError, match="not valid JSON") as info:
        docker_config_credentials(HOST, config)
    assert str(config / "config.json") in str(info.value)
    assert _b64(f"alice:{SECRET}") not in str(info.value) and SECRET not in str(info.value)


@pytest.mark.parametrize("auth", ["not base64!!", _b64("no-colon-here"), _b64("x")[:-1]])
def test_bad_auth_values_are_clear_errors(tmp_path: Path, auth: str) -> None:
    config = _config(tmp_path / "docker", {"auths": {HOST: {"auth": auth}}})
    with pytest.raises(RegistryAuthError) as info:
        docker_config_credentials(HOST, config)
    message = str(info.value)
    assert HOST in message and str(config / "config.json") in message
    assert "docker login" in message and auth not in message


def test_the_repr_hides_password_and_token() -> None:
    shown = repr(Credentials("alice", SECRET, TOKEN))
    assert "alice" in shown and SECRET not in shown and TOKEN not in shown
    assert SECRET not in str(Credentials("alice", SECRET))


# -- credential helpers ------------------------------------------------------------------------


@pytest.fixture
def helper(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Helper:
    """Write ``docker-credential-testhelper`` (a shell script body) into a directory on PATH;
    returns the path of the log where the script records its argv and stdin."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    log = tmp_path / "helper.log"
    monkeypatch.setenv("PATH", f"{bin_dir}:/usr/bin:/bin")

    def write(body: str) -> Path:
        script = bin_dir / "docker-credential-testhelper"
        script.write_text(f'#!/bin/sh\nhost=$(cat)\nprintf "%s|%s\\n" "$*" "$host" >> "{log}"\n{body}\n')
        script.chmod(0o755)
        return log

    return write


def _answer(username: str, secret: str, server: str = HOST) -> str:
    payload = json.dumps({"ServerURL": server, "Username": username, "Secret": secret})
    return f"cat <<'EOF'\n{payload}\nEOF"


@pytest.mark.parametrize("config_key", ["credHelpers", "credsStore"])
def test_a_helper_answers_with_username_and_secret(tmp_path: Path, helper: Helper, config_key: str) -> None:
    log = helper(_answer("alice", SECRET))
    data = {"credHelpers": {HOST: "testhelper"}} if config_key == "credHelpers" else {"credsStore": "testhelper"}
    # The helper is authoritative: the auths entry is not used even though it exists.
    data["auths"] = {HOST: {"auth": _b64("stale:stale")}}
    config = _config(tmp_path / "docker", data)
    assert docker_config_credentials(HOST, config) == Credentials("alice", SECRET)
    assert log.read_text() == f"get|{HOST}\n"  # `get`, the server address on stdin


def test_cred_helpers_win_over_creds_store(tmp_path: Path, helper: Helper) -> None:
    helper(_answer("alice", SECRET))
    config = _config(tmp_path / "docker", {"credsStore": "missingstore", "credHelpers": {HOST: "testhelper"}})
    assert docker_config_credentials(HOST, config) == Credentials("alice", SECRET)
    with pytest.raises(RegistryAuthError, match="docker-credential-missingstore"):
        docker_config_credentials("other.example.com", config)  # no credHelpers entry: the store


def test_a_helper_token_username_means_an_identity_token(tmp_path: Path, helper: Helper) -> None:
    helper(_answer("<token>", TOKEN))
    config = _config(tmp_path / "docker", {"credsStore": "testhelper"})
    found = docker_config_credentials(HOST, config)
    assert found == Credentials("", "", TOKEN)
    assert found is not None and TOKEN not in repr(found)


def test_docker_hub_is_asked_for_by_its_index_url(tmp_path: Path, helper: Helper) -> None:
    log = helper(_answer("hubuser", SECRET, "https://index.docker.io/v1/"))
    config = _config(tmp_path / "docker", {"credHelpers": {"docker.io": "testhelper"}})
    assert docker_config_credentials("docker.io", config) == Credentials("hubuser", SECRET)
    assert log.read_text() == "get|https://index.docker.io/v1/\n"


def test_not_found_in_the_store_means_none(tmp_path: Path, helper: Helper) -> None:
    helper('echo "credentials not found in native keychain"; exit 1')
    config = _config(tmp_path / "docker", {"credsStore": "testhelper", "auths": {HOST: {"auth": _b64("alice:pw")}}})
    assert docker_config_credentials(HOST, config) is None  # as Docker: no fallback to auths
    config = _config(tmp_path / "docker2", {"credHelpers": {HOST: "testhelper"}})
    assert docker_config_credentials(HOST, config) is None


def test_a_helper_not_on_path_is_an_error_naming_it(tmp_path: Path, helper: Helper) -> None:
    config = _config(
        tmp_path / "docker", {"credHelpers": {HOST: "nosuchhelper"}, "auths": {HOST: {"auth": _b64(f"alice:{SECRET}")}}}
    )
    with pytest.raises(RegistryAuthError) as info:
        docker_config_credentials(HOST, config)
    message = str(info.value)
    assert "docker-credential-nosuchhelper" in message and "not on PATH" in message
    assert HOST in message and SECRET not in message


def test_a_failing_helper_is_an_error_with_its_message(tmp_path: Path, helper: Helper) -> None:
    helper(f'echo "keychain is locked" >&2\n: "{SECRET}"\nexit 3')
    config = _config(tmp_path / "docker", {"credsStore": "testhelper"})
    with pytest.raises(RegistryAuthError) as info:
        docker_config_credentials(HOST, config)
    message = str(info.value)
    assert "docker-credential-testhelper" in message and HOST in message
    assert "keychain is locked" in message and SECRET not in message


def test_a_helper_printing_garbage_does_not_leak_it(tmp_path: Path, helper: Helper) -> None:
    helper(f'echo "Username=alice Secret={SECRET}"')  # exit 0, not JSON
    config = _config(tmp_path / "docker", {"credsStore": "testhelper"})
    with pytest.raises(RegistryAuthError, match="did not print the JSON") as info:
        docker_config_credentials(HOST, config)
    assert SECRET not in str(info.value) and HOST in str(info.value)


def test_a_hanging_helper_times_out(tmp_path: Path, helper: Helper) -> None:
    pid_file = tmp_path / "sleeper.pid"
    helper(f"sleep 30 &\necho $! > {pid_file}\nwait\n{_answer('alice', SECRET)}")
    config = _config(tmp_path / "docker", {"credHelpers": {HOST: "testhelper"}})
    with pytest.raises(RegistryAuthError) as info:
        docker_config_credentials(HOST, config, timeout=1)
    sleeper = int(pid_file.read_text())
    for _ in range(50):  # the helper's whole process group is killed, its children included
        try:
            state = Path(f"/proc/{sleeper}/stat").read_text().split(") ", 1)[1][0]
        except (FileNotFoundError, ProcessLookupError):
            break
        if state in "ZX":  # killed; a zombie only waits for a parent to reap it
            break
        time.sleep(0.1)
    else:
        raise AssertionError(f"the helper's child {sleeper} outlived the timeout")
    message = str(info.value)
    assert "docker-credential-testhelper" in message and "did not answer within 1 s" in message
    assert HOST in message and SECRET not in message


# -- resolve_credentials -------------------------------------------------------------------------


def test_the_registry_config_env_wins_over_docker(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _config(tmp_path / "home" / ".docker", {"auths": {HOST: {"auth": _b64("docker:pw")}}})
    config = RegistryConfig(url=f"https://{HOST}", username_env="REG_USER", password_env="REG_PW")
    monkeypatch.setenv("REG_USER", "env-user")
    monkeypatch.setenv("REG_PW", SECRET)
    assert resolve_credentials(config) == Credentials("env-user", SECRET)
    assert resolve_credentials(RegistryConfig(url=HOST)) == Credentials("docker", "pw")
    assert resolve_credentials(RegistryConfig(url="elsewhere.example.com")) is None

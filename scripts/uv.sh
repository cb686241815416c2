# Sourced by the other scripts: puts a working `uv` in $UV (installing it from PyPI if needed).
if command -v uv >/dev/null 2>&1; then
    UV=(uv)
else
    if ! python3 -m uv --version >/dev/null 2>&1; then
        echo "installing uv from PyPI" >&2
        python3 -m pip install --quiet --disable-pip-version-check uv
    fi
    UV=(python3 -m uv)
fi

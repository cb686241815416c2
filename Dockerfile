# The service's own image. Build: docker build -t pipeline .
# First version: the packaging issue adds hadolint checks and hardening.
FROM python:3.11-slim AS build
RUN pip install --no-cache-dir uv==0.13.9
WORKDIR /src
COPY pyproject.toml uv.lock ./
RUN uv export --frozen --no-dev --no-hashes -o requirements.txt && \
    pip wheel --no-cache-dir -w /wheels -r requirements.txt
COPY pipeline ./pipeline
COPY workers ./workers
COPY migrations ./migrations
COPY README.md ./
RUN uv build --wheel -o /wheels

FROM python:3.11-slim
RUN apt-get update && apt-get install -y --no-install-recommends git docker.io && \
    rm -rf /var/lib/apt/lists/* && useradd --create-home --uid 10001 pipeline
COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir /wheels/*.whl && rm -rf /wheels
USER pipeline
WORKDIR /home/pipeline
EXPOSE 8080
HEALTHCHECK CMD python -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8080/healthz')"
ENTRYPOINT ["pipeline"]
CMD ["serve", "--config", "/etc/pipeline/pipeline.yaml", "--host", "0.0.0.0"]

"""``/metrics``: Prometheus text, computed from the database on each scrape (see store.metrics)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

from fastapi import APIRouter
from fastapi.responses import Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector, CollectorRegistry
from prometheus_client.utils import floatToGoString
from sqlalchemy.orm import Session

from pipeline.api import _examples as ex
from pipeline.api.deps import ConfigDep, SessionDep
from pipeline.cleanup import data_dir_sizes
from pipeline.store import metrics

router = APIRouter(tags=["health"])

# prometheus_client leaves this one unannotated: a float in, its Go spelling ("+Inf", "0.5") out
_go_float: Callable[[float], str] = floatToGoString


class _FromDatabase(Collector):
    def __init__(self, session: Session) -> None:
        self.session = session

    def collect(self) -> Iterator[Metric]:
        yield from self._counts()
        yield from self._durations()
        yield from self._queues()
        yield from self._cache()

    def _counts(self) -> Iterator[Metric]:
        for what, labels, help_text in (
            ("builds", ["project", "status"], "Finished builds by outcome"),
            ("promotions", ["project", "environment", "status"], "Finished promotions by outcome"),
            ("webhook_deliveries", ["provider", "outcome"], "Webhook deliveries by outcome"),
        ):
            family = CounterMetricFamily(f"pipeline_{what}", help_text, labels=labels)
            for values, count in metrics.counts(self.session, what):
                family.add_metric(list(values), count)
            yield family

    def _durations(self) -> Iterator[Metric]:
        for what, labels in (("builds", ["project"]), ("promotions", ["project", "environment"])):
            family = HistogramMetricFamily(
                f"pipeline_{what[:-1]}_duration_seconds", f"Start to finish of succeeded {what}", labels=labels
            )
            for found in metrics.durations(self.session, what):
                buckets = [(_go_float(b), c) for b, c in zip(metrics.BUCKETS, found.buckets, strict=True)]
                family.add_metric(list(found.labels), [*buckets, ("+Inf", found.count)], found.total)
            yield family

    def _queues(self) -> Iterator[Metric]:
        depth = GaugeMetricFamily("pipeline_queue_depth", "Rows waiting to be worked", labels=["queue"])
        age = GaugeMetricFamily("pipeline_queue_oldest_age_seconds", "Age of the oldest waiting row", labels=["queue"])
        for queue in ("builds", "promotions"):
            state = metrics.queue_state(self.session, queue)
            depth.add_metric([queue], state.depth)
            age.add_metric([queue], state.oldest_age_seconds)
        yield depth
        yield age

    def _cache(self) -> Iterator[Metric]:
        steps = CounterMetricFamily("pipeline_build_steps", "Build steps of succeeded builds", labels=["project"])
        cached = CounterMetricFamily("pipeline_build_steps_cached", "Build steps served from cache", labels=["project"])
        ratio = GaugeMetricFamily("pipeline_build_cache_hit_ratio", "Cached share of build steps", labels=["project"])
        for project, total, hits in metrics.cache_steps(self.session):
            steps.add_metric([project], total)
            cached.add_metric([project], hits)
            ratio.add_metric([project], hits / total if total else 0.0)
        yield from (steps, cached, ratio)


class _DataDir(Collector):
    """The data directory's size by part, so a disk filling up (mirrors, logs, caches) is seen
    before it is full; walked at most once a minute (``cleanup.data_dir_sizes``)."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir

    def collect(self) -> Iterator[Metric]:
        family = GaugeMetricFamily(
            "pipeline_data_dir_bytes", "Bytes under the data directory, by part (total: all of it)", labels=["part"]
        )
        for part, size in data_dir_sizes(self.data_dir).items():
            family.add_metric([part], size)
        yield family


@router.get(
    "/metrics",
    summary="Prometheus metrics",
    response_class=Response,
    description=(
        "Prometheus text exposition, computed from the database on each scrape: finished builds, "
        "promotions and webhook deliveries by outcome, build and promotion durations, queue depth and "
        "age, build cache hits, and the data directory's size by part. Needs no token."
    ),
    responses={
        200: {
            "description": "the metrics, in the Prometheus text format",
            "content": {CONTENT_TYPE_LATEST: {"schema": {"type": "string"}, "example": ex.METRICS}},
        }
    },
)
def prometheus_metrics(session: SessionDep, config: ConfigDep) -> Response:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_FromDatabase(session))
    registry.register(_DataDir(config.data_dir))
    return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

"""Resolve feature references against a Feast registry into the plain specs the engine joins.

A feature reference is ``"<view>:<feature>"``; a feature service expands to all references of its
projections. Both regular and on-demand feature views are resolved.
"""

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

from feast import FeatureStore, FeatureView, FileSource, OnDemandFeatureView
from feast.data_source import PushSource
from feast.value_type import ValueType

from service.training.offline.errors import (
    FeatureReferenceInvalid,
    FeatureSelectionInvalid,
    UnknownFeature,
    UnknownFeatureService,
)


@dataclass(frozen=True)
class ViewSpec:
    """One batch feature view as the engine needs it.

    ``path`` is the Parquet file of its batch source; ``columns`` maps the names the engine uses
    (join keys, features) to the source columns, field mapping applied. ``ttl`` of None means no
    lower bound on feature age. ``types`` gives the declared Feast value type of each join key
    (from the view's entity columns) and feature.
    """

    name: str
    path: Path
    join_keys: tuple[str, ...]
    features: tuple[str, ...]
    timestamp_field: str
    created_field: str | None
    ttl: timedelta | None
    columns: dict[str, str]
    definition: FeatureView
    types: dict[str, ValueType] = field(default_factory=dict)


@dataclass(frozen=True)
class OnDemandSpec:
    """An on-demand feature view: computed after the join from its source features and request fields."""

    name: str
    features: tuple[str, ...]
    source_features: dict[str, tuple[str, ...]]  # source view -> features it reads
    request_fields: tuple[str, ...]
    definition: OnDemandFeatureView
    types: dict[str, ValueType] = field(default_factory=dict)  # request fields and features -> declared type


@dataclass(frozen=True)
class RetrievalPlan:
    """Everything one retrieval joins: batch views (requested + needed by on-demand views) and outputs."""

    views: tuple[ViewSpec, ...]
    on_demand: tuple[OnDemandSpec, ...]
    requested: tuple[tuple[str, str], ...]  # (view, feature) in request order

    @property
    def join_keys(self) -> tuple[str, ...]:
        keys: dict[str, None] = {}
        for v in self.views:
            keys.update(dict.fromkeys(v.join_keys))
        return tuple(keys)

    @property
    def key_types(self) -> dict[str, ValueType]:
        """Join key -> its declared Feast value type (``UNKNOWN`` when no view declares it)."""
        return {k: next((v.types[k] for v in self.views if k in v.types), ValueType.UNKNOWN) for k in self.join_keys}

    @property
    def request_types(self) -> dict[str, ValueType]:
        """Request field -> its declared Feast value type."""
        return {
            f: next((o.types[f] for o in self.on_demand if f in o.types), ValueType.UNKNOWN)
            for f in self.request_fields
        }

    def feature_type(self, view: str, feature: str) -> ValueType:
        """The declared Feast value type of ``view:feature`` (``UNKNOWN`` if not planned)."""
        for spec in (*self.views, *self.on_demand):
            if spec.name == view:
                return spec.types.get(feature, ValueType.UNKNOWN)
        return ValueType.UNKNOWN

    @property
    def request_fields(self) -> tuple[str, ...]:
        fields: dict[str, None] = {}
        for o in self.on_demand:
            fields.update(dict.fromkeys(o.request_fields))
        return tuple(fields)


def parse_reference(ref: str) -> tuple[str, str]:
    view, sep, feature = ref.partition(":")
    if not sep or not view or not feature:
        raise FeatureReferenceInvalid(ref)
    return view, feature


def registry_version(store: FeatureStore) -> str | None:
    """An id of the registry contents the store currently holds (changes on apply/refresh), or None."""
    proto = getattr(store.registry, "cached_registry_proto", None)
    if proto is None or not proto.HasField("last_updated"):
        return None
    return str(proto.last_updated.ToNanoseconds())


_CACHE: dict[tuple[Any, ...], Any] = {}
_CACHE_MAX = 1024


def _memo(store: FeatureStore, kind: str, key: tuple[Any, ...], build: Callable[[], Any]) -> Any:
    """Cache what is resolved from the registry until the registry changes (Feast's ``from_proto`` of
    every view costs ~30 ms per call, under typeguard; an online read must not pay it)."""
    version = registry_version(store)
    if version is None:
        return build()
    full = (id(store), version, kind, key)
    if full not in _CACHE:
        if len(_CACHE) >= _CACHE_MAX:
            _CACHE.clear()
        _CACHE[full] = build()
    return _CACHE[full]


def service_references(store: FeatureStore, service: str) -> list[str]:
    """The ``view:feature`` references of a feature service, in its declared order."""
    return list(_memo(store, "service", (service,), lambda: _service_references(store, service)))


def _service_references(store: FeatureStore, service: str) -> tuple[str, ...]:
    try:
        fs = store.get_feature_service(service)
    except Exception as exc:  # Feast raises FeatureServiceNotFoundException
        raise UnknownFeatureService(service) from exc
    return tuple(f"{p.name_to_use()}:{f.name}" for p in fs.feature_view_projections for f in p.features)


def batch_spec(repo_path: Path, fv: FeatureView) -> ViewSpec:
    """The engine's view of a batch (or push-fed) feature view; its source must be a Parquet file."""
    source = fv.batch_source
    if isinstance(source, PushSource):
        source = source.batch_source
    if not isinstance(source, FileSource):
        raise FeatureSelectionInvalid(f"{fv.name}: only file (Parquet) sources are supported offline")
    reverse = {dst: src for src, dst in (source.field_mapping or {}).items()}
    join_keys = tuple(e.name for e in fv.entity_columns)
    features = tuple(f.name for f in fv.features)
    ttl = fv.ttl if fv.ttl and fv.ttl > timedelta(0) else None
    path = Path(FileSource.get_uri_for_file_path(repo_path, source.path))
    return ViewSpec(
        name=fv.name,
        path=path,
        join_keys=join_keys,
        features=features,
        timestamp_field=reverse.get(source.timestamp_field, source.timestamp_field),
        created_field=reverse.get(source.created_timestamp_column, source.created_timestamp_column) or None,
        ttl=ttl,
        columns={c: reverse.get(c, c) for c in (*join_keys, *features)},
        definition=fv,
        types={f.name: f.dtype.to_value_type() for f in (*fv.entity_columns, *fv.features)},
    )


def plan_retrieval(store: FeatureStore, references: list[str]) -> RetrievalPlan:
    """Resolve ``view:feature`` references into a plan (cached until the registry changes).

    Raises:
        FeatureReferenceInvalid: a reference is not ``view:feature``.
        UnknownFeature: the view or the feature does not exist in the registry.
    """
    return _memo(store, "plan", tuple(references), lambda: _plan_retrieval(store, references))


def _plan_retrieval(store: FeatureStore, references: list[str]) -> RetrievalPlan:
    batch = {fv.name: fv for fv in store.list_feature_views()}
    odfvs = {v.name: v for v in store.list_on_demand_feature_views()}
    requested: list[tuple[str, str]] = []
    needed: dict[str, None] = {}
    on_demand: dict[str, OnDemandSpec] = {}
    for ref in references:
        view, feature = parse_reference(ref)
        if view in batch:
            if feature not in {f.name for f in batch[view].features}:
                raise UnknownFeature(ref)
            needed[view] = None
        elif view in odfvs:
            odfv = odfvs[view]
            if feature not in {f.name for f in odfv.features}:
                raise UnknownFeature(ref)
            if view not in on_demand:
                sources = {
                    p.name: tuple(f.name for f in p.features) for p in odfv.source_feature_view_projections.values()
                }
                request_fields = tuple(f.name for rs in odfv.source_request_sources.values() for f in rs.schema)
                types = {
                    f.name: f.dtype.to_value_type() for rs in odfv.source_request_sources.values() for f in rs.schema
                }
                types |= {f.name: f.dtype.to_value_type() for f in odfv.features}
                on_demand[view] = OnDemandSpec(
                    view, tuple(f.name for f in odfv.features), sources, request_fields, odfv, types
                )
                needed.update(dict.fromkeys(sources))
        else:
            raise UnknownFeature(ref)
        requested.append((view, feature))
    return RetrievalPlan(
        views=tuple(batch_spec(Path(store.repo_path), batch[name]) for name in needed),
        on_demand=tuple(on_demand.values()),
        requested=tuple(requested),
    )

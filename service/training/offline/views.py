"""Resolve feature references against a Feast registry into the plain specs the engine joins.

A feature reference is ``"<view>:<feature>"``; a feature service expands to all references of its
projections. Both regular and on-demand feature views are resolved.
"""

import contextlib
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from datetime import timedelta
from functools import cached_property
from pathlib import Path
from typing import Any

from feast import FeatureStore, FeatureView, FileSource, OnDemandFeatureView
from feast.data_source import PushSource
from feast.feature_view import DUMMY_ENTITY_ID
from feast.value_type import ValueType

from service.training.offline.errors import (
    FeatureReferenceInvalid,
    FeatureSelectionInvalid,
    UnknownFeature,
    UnknownFeatureService,
)


@dataclass(frozen=True)
class ViewSpec:
    """One batch feature view as the engine needs it, as projected by a feature service.

    ``name`` is the name the view is referred to by (``fv.with_name(...)`` in a feature service:
    the alias; else the view's name). ``join_keys`` are the entity-table columns it is joined on
    (``fv.with_join_key_map({"origin": "airport"})``: ``airport``), empty for a view without
    entities (global features: one value for every entity row); ``store_keys`` maps each key the
    online store keys the view by (the view's own join keys, Feast's ``__dummy_id`` for a view
    without entities) to the entity column it is read from (None: Feast's dummy value ``""``).
    ``path`` is the Parquet file, directory or glob of its batch source; ``columns`` maps the names
    the engine uses (join keys, features) to the source columns, field mapping applied. ``ttl`` of
    None means no lower bound on feature age. ``types`` gives the declared Feast value type of each
    join key (by its entity-table name) and feature.
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
    store_keys: dict[str, str | None] = field(default_factory=dict)

    @property
    def parquet_glob(self) -> str:
        """What ``read_parquet`` reads: the file or glob itself, every ``*.parquet`` under a directory."""
        return str(self.path / "**" / "*.parquet") if self.path.is_dir() else str(self.path)

    def parquet_files(self) -> list[Path]:
        """The Parquet files the source holds now (sorted; one for a file source; none if missing)."""
        text = str(self.path)
        if self.path.is_dir():
            return sorted(p for p in self.path.rglob("*.parquet") if p.is_file())
        if any(c in text for c in "*?["):
            anchor = Path(text[: min(text.index(c) for c in "*?[" if c in text)]).parent
            return sorted(p for p in anchor.glob(str(Path(text).relative_to(anchor))) if p.is_file())
        return [self.path] if self.path.exists() else []

    @contextlib.contextmanager
    def pinned(self) -> Iterator["ViewSpec"]:
        """This view with its source file held as it is now, for the block's reads.

        A single Parquet file is read through a descriptor opened here (``/dev/fd/N``): a push that
        replaces the file meanwhile (a new file renamed over it) cannot mix two versions into one
        query, which DuckDB otherwise can (it opens a file more than once per query: measured, ~2 % of
        reads during appends failed with ``TProtocolException: Invalid data``). A directory or a glob
        is used as it is: its files are added, never rewritten. A missing file: the view unchanged.
        """
        text = str(self.path)
        if self.path.is_dir() or any(c in text for c in "*?["):
            yield self
            return
        try:
            fd = os.open(self.path, os.O_RDONLY)
        except FileNotFoundError:
            yield self
            return
        try:
            yield replace(self, path=Path(f"/dev/fd/{fd}"))
        finally:
            os.close(fd)


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

    # Derived once per plan (plans are cached until the registry changes; an online read asks for
    # these on every request): cached_property keeps them in the instance's __dict__.
    @cached_property
    def join_keys(self) -> tuple[str, ...]:
        keys: dict[str, None] = {}
        for v in self.views:
            keys.update(dict.fromkeys(v.join_keys))
        return tuple(keys)

    @cached_property
    def _key_types(self) -> dict[str, ValueType]:
        return {k: next((v.types[k] for v in self.views if k in v.types), ValueType.UNKNOWN) for k in self.join_keys}

    @property
    def key_types(self) -> dict[str, ValueType]:
        """Join key -> its declared Feast value type (``UNKNOWN`` when no view declares it); a new dict."""
        return dict(self._key_types)

    @cached_property
    def _request_types(self) -> dict[str, ValueType]:
        return {
            f: next((o.types[f] for o in self.on_demand if f in o.types), ValueType.UNKNOWN)
            for f in self.request_fields
        }

    @property
    def request_types(self) -> dict[str, ValueType]:
        """Request field -> its declared Feast value type; a new dict."""
        return dict(self._request_types)

    def feature_type(self, view: str, feature: str) -> ValueType:
        """The declared Feast value type of ``view:feature`` (``UNKNOWN`` if not planned)."""
        for spec in (*self.views, *self.on_demand):
            if spec.name == view:
                return spec.types.get(feature, ValueType.UNKNOWN)
        return ValueType.UNKNOWN

    @cached_property
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
    """An id of the registry contents the store currently holds (changes on apply/refresh), or None.

    A snapshot registry (``service.registry.SnapshotRegistry``) is asked for its current snapshot first
    (one ``stat`` of the file), so a cached plan never outlives the registry version it was built from.
    """
    snapshot = getattr(store.registry, "snapshot", None)
    proto = snapshot().proto if callable(snapshot) else getattr(store.registry, "cached_registry_proto", None)
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
    """The engine's view of a batch (or push-fed) feature view, under its projection (``fv.projection``:
    the default one for a view from the registry, a feature service's for a view it projects); its
    source must be Parquet (a file, a directory of files or a glob)."""
    source = fv.batch_source
    if isinstance(source, PushSource):
        source = source.batch_source
    if not isinstance(source, FileSource):
        raise FeatureSelectionInvalid(f"{fv.name}: only file (Parquet) sources are supported offline")
    reverse = {dst: src for src, dst in (source.field_mapping or {}).items()}
    key_map = fv.projection.join_key_map or {}
    store_keys = {e.name: None if e.name == DUMMY_ENTITY_ID else key_map.get(e.name, e.name) for e in fv.entity_columns}
    if not store_keys:  # a copy of a view without entities (Feast's __copy__ drops the inferred dummy column)
        store_keys = {DUMMY_ENTITY_ID: None}
    view_keys = {entity: key for key, entity in store_keys.items() if entity is not None}
    join_keys = tuple(view_keys)
    features = tuple(f.name for f in fv.features)
    ttl = fv.ttl if fv.ttl and fv.ttl > timedelta(0) else None
    path = Path(FileSource.get_uri_for_file_path(repo_path, source.path))
    columns = {k: reverse.get(view_keys[k], view_keys[k]) for k in join_keys}
    return ViewSpec(
        name=fv.projection.name_to_use(),
        path=path,
        join_keys=join_keys,
        features=features,
        timestamp_field=reverse.get(source.timestamp_field, source.timestamp_field),
        created_field=reverse.get(source.created_timestamp_column, source.created_timestamp_column) or None,
        ttl=ttl,
        columns=columns | {c: reverse.get(c, c) for c in features},
        definition=fv,
        # join keys by their entity-table names (after with_join_key_map), then features
        types={key_map.get(f.name, f.name): f.dtype.to_value_type() for f in fv.entity_columns}
        | {f.name: f.dtype.to_value_type() for f in fv.features},
        store_keys=store_keys,
    )


def plan_retrieval(store: FeatureStore, references: list[str], feature_service: str | None = None) -> RetrievalPlan:
    """Resolve ``view:feature`` references into a plan (cached until the registry changes).

    With ``feature_service``, a reference's view is first looked up among the service's projections
    (``fv.with_name("x")`` is referred to as ``x:feature``; ``fv.with_join_key_map`` renames the entity
    columns it joins on), then among the registry's views.

    Raises:
        FeatureReferenceInvalid: a reference is not ``view:feature``.
        UnknownFeature: the view or the feature does not exist in the registry.
        UnknownFeatureService: ``feature_service`` does not exist.
    """
    key = (tuple(references), feature_service)
    return _memo(store, "plan", key, lambda: _plan_retrieval(store, references, feature_service))


def _projected(
    store: FeatureStore, feature_service: str | None
) -> tuple[dict[str, FeatureView], dict[str, OnDemandFeatureView]]:
    """The registry's views by name, overlaid with the feature service's projections by ``name_to_use``."""
    batch = {fv.name: fv for fv in store.list_feature_views()}
    odfvs = {v.name: v for v in store.list_on_demand_feature_views()}
    if feature_service is None:
        return batch, odfvs
    try:
        fs = store.get_feature_service(feature_service)
    except Exception as exc:  # Feast raises FeatureServiceNotFoundException
        raise UnknownFeatureService(feature_service) from exc
    projected_batch: dict[str, FeatureView] = {}
    projected_odfvs: dict[str, OnDemandFeatureView] = {}
    for p in fs.feature_view_projections:
        if p.name in batch:
            projected_batch[p.name_to_use()] = batch[p.name].with_projection(p)
        elif p.name in odfvs:
            projected_odfvs[p.name_to_use()] = odfvs[p.name].with_projection(p)
    return batch | projected_batch, odfvs | projected_odfvs


def _plan_retrieval(store: FeatureStore, references: list[str], feature_service: str | None) -> RetrievalPlan:
    batch, odfvs = _projected(store, feature_service)
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

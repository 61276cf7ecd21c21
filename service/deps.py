"""Typed dependencies: what routes need, taken from ``app.state`` (opened in the app's lifespan).

The getters are ``async`` on purpose: FastAPI runs a plain ``def`` dependency in its thread pool, and
a thread hop per dependency per request cost more than the whole online read (bench/RESULTS.md).
"""

from typing import Annotated

from fastapi import Depends, Request
from feast import FeatureStore

from lineage import LineageStore
from service.settings import Settings
from service.training.catalog import TrainingSetCatalog


async def get_settings(request: Request) -> Settings:
    return request.app.state.settings


async def get_feature_store(request: Request) -> FeatureStore:
    return request.app.state.feature_store


async def get_lineage_store(request: Request) -> LineageStore:
    return request.app.state.lineage


async def get_catalog(request: Request) -> TrainingSetCatalog:
    return request.app.state.catalog


SettingsDep = Annotated[Settings, Depends(get_settings)]
StoreDep = Annotated[FeatureStore, Depends(get_feature_store)]
LineageDep = Annotated[LineageStore, Depends(get_lineage_store)]
CatalogDep = Annotated[TrainingSetCatalog, Depends(get_catalog)]

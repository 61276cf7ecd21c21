"""``GET /health``: is the registry readable and the lineage database reachable."""

from typing import Any

from fastapi import APIRouter

from service.deps import LineageDep, SettingsDep, StoreDep

router = APIRouter(tags=["health"])


@router.get("/health")
def health(store: StoreDep, lineage: LineageDep, settings: SettingsDep) -> dict[str, Any]:
    return {
        "status": "ok",
        "project": store.project,
        "repo": str(settings.repo_path),
        "feature_views": len(store.list_feature_views()),
        "feature_services": [fs.name for fs in store.list_feature_services()],
        "lineage_nodes": len(lineage.current_graph()),
    }

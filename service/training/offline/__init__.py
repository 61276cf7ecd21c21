"""The offline engine: ``views.py`` (Feast definitions -> ``RetrievalPlan``), ``engine.py`` (the DuckDB
point-in-time join), ``order.py`` (the one order of feature rows, shared with materialization and the online
stores), ``keys.py`` (how a join key is compared, shared with materialization), ``audit.py`` (the leakage
audit), ``errors.py``, ``feast_store.py`` (the Feast offline-store plug-in)."""

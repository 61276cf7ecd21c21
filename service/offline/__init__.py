"""Old home of the offline engine, kept for the ``type:`` path users write in ``feature_store.yaml``.

The code lives in :mod:`service.training.offline`; ``type: service.offline.feast_store.FeastlineOfflineStore``
keeps working through :mod:`service.offline.feast_store`. New repos should write the new path.
"""

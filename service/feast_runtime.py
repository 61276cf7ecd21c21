"""Importing Feast fast in processes that only read definitions: ``feastline serve`` and ``materialize``.

Feast 0.67 decorates its definition classes (``FeatureView``, ``Entity``, ``Field``, the data
sources, ``FeatureService``, ...) with typeguard's ``@typechecked``, which re-parses and recompiles
each class's source when ``feast`` is imported: measured here, ``import feast`` takes 4.7-7.6 s with
it and 1.9-2.0 s without. The checks validate arguments of user-written definitions; a serving or
materializing process builds its definitions from the registry (``from_proto``) that ``feast apply``
/ ``feastline apply`` already validated, so they check nothing new there.

:func:`skip_definition_typechecks` turns the decorator into the identity *before* Feast is imported.
``feastline apply`` and ``build-data`` do not call it: user definitions keep Feast's type errors.
Set ``FEASTLINE_FEAST_TYPECHECKS=1`` to keep the checks everywhere.
"""

import os
import sys
from collections.abc import Callable
from typing import Any


def _identity_typechecked(target: Any = None, **_options: Any) -> Any:
    """``typeguard.typechecked`` without instrumentation: returns the class or function unchanged."""
    if target is None:
        return lambda inner: inner
    return target


def skip_definition_typechecks() -> bool:
    """Make ``typeguard.typechecked`` the identity for modules imported from now on.

    Returns:
        True if Feast will be imported without the instrumentation; False if it was already imported
        (nothing changes then) or ``FEASTLINE_FEAST_TYPECHECKS=1`` asks to keep the checks.
    """
    if "feast" in sys.modules or os.environ.get("FEASTLINE_FEAST_TYPECHECKS") == "1":
        return False
    import typeguard
    import typeguard._decorators

    identity: Callable[..., Any] = _identity_typechecked
    typeguard.typechecked = identity
    typeguard._decorators.typechecked = identity
    return True

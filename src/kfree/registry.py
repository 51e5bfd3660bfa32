"""Name → component lookup, so the CLI and configs can say ``--loss triplet-l3``.

A component registers itself with a decorator on its class, next to its code::

    @register("cluster", "hac")
    class ThresholdAgglomerative(...): ...

    @register("loss", "triplet-l1", variant="l1")   # a name may carry default arguments
    @register("loss", "triplet-l2", variant="l2")
    class TripletLoss(...): ...

Adding a loss or a clusterer is therefore its module and one import line in its package's
``__init__`` (plus a row in the tables that list them: CONTRIBUTING.md). Lookups import the kind's package on first use (:data:`PACKAGES`), so
``kfree --help`` stays fast and torch is imported only when a loss is asked for. Code outside kfree
registers the same way once its module is imported: the first lookup imports the modules of the
``kfree.plugins`` entry-point group and of ``$KFREE_PLUGINS`` (:func:`load_plugins`), so the CLI
finds them too. An unknown name raises a ConfigError listing
the valid names; a component whose optional package is missing (``requires=``) raises a
MissingDependencyError naming the pip extra.
"""

from __future__ import annotations

import importlib
import importlib.util
import re
from collections.abc import Callable
from typing import Any, TypeVar

from .exceptions import ConfigError, MissingDependencyError

T = TypeVar("T", bound=type)

#: the package whose import registers every built-in component of a kind
PACKAGES: dict[str, str] = {"loss": "kfree.losses", "cluster": "kfree.cluster"}

_REGISTRY: dict[str, dict[str, tuple[type, dict[str, Any]]]] = {}

#: Components that need an optional package: (kind, name) -> (module to import, pip extra).
REQUIRES: dict[tuple[str, str], tuple[str, str]] = {}

#: What a clusterer may declare in its ``capabilities``: it cuts at a ``threshold``, can instead be cut
#: at ``n_clusters``, takes a ``distance`` kind or a ``linkage``, or turns a calibrated
#: ``cut_probability`` into costs. Callers (the learner, the CLI) choose arguments from these
#: declarations, never by reading ``__init__``'s signature; a test checks they agree with it.
#: Two class flags say more: ``requires_n_clusters`` (it needs K) and ``joins_single_pairs`` (its
#: threshold bounds something other than a cluster's diameter: single pairs, chained as a k-NN
#: graph's components are, or a radius around a leader; a model's validated cut, a diameter, is
#: then no threshold for it).
CLUSTER_CAPABILITIES = frozenset({"threshold", "n_clusters", "distance", "linkage", "cut_probability", "k_max"})


def _check_declaration(kind: str, name: str, cls: type) -> None:
    """A clusterer must say what ``fit`` can be told, or every caller fails later, deep inside."""
    if kind != "cluster":
        return
    caps = getattr(cls, "capabilities", None)
    if not isinstance(caps, (set, frozenset)) or not caps <= CLUSTER_CAPABILITIES:
        raise ConfigError(f"cluster {name!r} ({cls.__qualname__}) must declare capabilities = frozenset({{...}}) "
                          f"of {sorted(CLUSTER_CAPABILITIES)} (what its fit can be told), not {caps!r}")
    # flags that contradict the capabilities made every call fail, with or without K (a contributor trial)
    for flag, needs in (("requires_n_clusters", "n_clusters"), ("joins_single_pairs", "threshold")):
        if getattr(cls, flag, False) and needs not in caps:
            raise ConfigError(f"cluster {name!r} ({cls.__qualname__}) sets {flag} = True but its capabilities lack "
                              f"{needs!r}: declare it, or drop the flag")


def register(kind: str, name: str, *, requires: tuple[str, str] | None = None,
             **defaults: Any) -> Callable[[T], T]:
    """Class decorator: make ``cls`` available as ``name`` of ``kind`` (with default kwargs).

    ``requires=(module, extra)`` names an optional package the component imports when used; its
    absence is reported before any work, with ``pip install 'kfree[extra]'``.
    """

    def decorate(cls: T) -> T:
        entries = _REGISTRY.setdefault(kind, {})
        if name in entries and entries[name][0] is not cls:
            old = entries[name][0]
            raise ConfigError(f"{kind} name {name!r} is taken by {old.__module__}.{old.__qualname__}; "
                              f"register {cls.__qualname__} under another name")
        _check_declaration(kind, name, cls)
        entries[name] = (cls, dict(defaults))
        if requires is not None:
            REQUIRES[(kind, name)] = requires
        return cls

    return decorate


#: entry-point group of packages that register components (their modules are imported on the
#: first lookup, so ``kfree train --loss theirs`` and ``kfree cluster --method theirs`` find them)
PLUGINS_GROUP = "kfree.plugins"
#: environment variable: comma-separated modules imported the same way (a module of your own, on
#: PYTHONPATH, without packaging it)
PLUGINS_ENV = "KFREE_PLUGINS"
_plugins_loaded = False


def load_plugins() -> list[str]:
    """Import the modules that register components from outside kfree, once: each entry point of
    the ``kfree.plugins`` group and each module named in ``$KFREE_PLUGINS``. Before, a component
    defined outside kfree was out of the CLI's reach (a contributor trial). A module that fails to
    import is a ConfigError naming it. Returns the modules imported."""
    global _plugins_loaded
    if _plugins_loaded:
        return []
    _plugins_loaded = True
    import os
    from importlib.metadata import entry_points

    names = [(f"entry point {ep.name!r} ({ep.value})", ep.value) for ep in entry_points(group=PLUGINS_GROUP)]
    names += [(f"{PLUGINS_ENV} module {m!r}", m) for m in
              (m.strip() for m in os.environ.get(PLUGINS_ENV, "").split(",")) if m]
    for what, module in names:
        try:
            importlib.import_module(module.split(":", 1)[0])
        except Exception as e:  # (a plugin's own error, said in one line with its name)
            _plugins_loaded = False  # (fixed and retried: not taken as loaded)
            raise ConfigError(f"the kfree plugin {what} cannot be imported: {type(e).__name__}: {e}") from None
    return [m for _, m in names]


def _entries(kind: str) -> dict[str, tuple[type, dict[str, Any]]]:
    package = PACKAGES.get(kind)
    if package is None and kind not in _REGISTRY:
        raise ConfigError(f"unknown component kind {kind!r}; kinds are {sorted(set(PACKAGES) | set(_REGISTRY))}")
    if package is not None:
        importlib.import_module(package)  # its modules' decorators fill the registry
    load_plugins()
    return _REGISTRY.get(kind, {})


def missing_requirement(kind: str, name: str) -> str | None:
    """Why ``name`` cannot be used here (a one-line instruction), or None when it can."""
    _entries(kind)
    req = REQUIRES.get((kind, name))
    if req is None:
        return None
    module, extra = req
    try:
        found = importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):  # a parent package missing, or None in sys.modules
        found = False
    if found:
        return None
    return (f"{kind} {name!r} needs the optional package {module!r}, which is not installed: "
            f"pip install 'kfree[{extra}]'")


def available(kind: str, name: str) -> bool:
    """Whether the component's optional packages (if any) are installed."""
    return missing_requirement(kind, name) is None


def names(kind: str) -> list[str]:
    return sorted(_entries(kind))


def resolve_class(kind: str, name: str) -> tuple[Any, dict[str, Any]]:
    """The class registered under ``name`` and its default keyword arguments, whether or not its
    optional package is installed (to describe it; :func:`resolve` to use it)."""
    entries = _entries(kind)
    if name not in entries:
        raise ConfigError(f"unknown {kind} {name!r}; choose one of {sorted(entries)}")
    cls, defaults = entries[name]
    return cls, dict(defaults)


def resolve(kind: str, name: str) -> tuple[Any, dict[str, Any]]:
    """The class registered under ``name`` and its default keyword arguments."""
    resolve_class(kind, name)
    missing = missing_requirement(kind, name)
    if missing is not None:
        raise MissingDependencyError(missing)
    return resolve_class(kind, name)


def get(kind: str, name: str, **kwargs: Any) -> Any:
    """Instantiate the component ``name`` of ``kind`` with its defaults updated by ``kwargs``."""
    cls, defaults = resolve(kind, name)
    defaults.update(kwargs)
    try:
        obj = cls(**defaults)
    except TypeError as e:
        import inspect

        params = [p for p in inspect.signature(cls).parameters if p not in ("self", "args", "kwargs")]
        why = re.sub(r"^[\w.]*__init__[(][)] ", "", str(e))  # ("X.__init__() got an unexpected …")
        raise ConfigError(f"bad parameters for {kind} {name!r}: {why}; it takes {', '.join(params) or 'none'}") from None
    if getattr(cls, "name", None) == "base":  # a loss that names itself nowhere (EmbeddingLoss's
        obj.name = name  # default): its messages say the name it was asked for by
    return obj


def cluster_capabilities(method: str, *, n_clusters: int | None = None, threshold: float | None = None,
                         k_option: str = "n_clusters", threshold_option: str = "threshold") -> frozenset[str]:
    """What the clusterer ``method`` can be told (its ``capabilities``), once the request fits it.

    Refused with a ConfigError, before any work: no K for a method that needs one, a K for one
    that finds the number itself, a ``threshold`` for one that does not cut at one or together
    with a K (which decides the cut instead). The API and the command line ask the same
    questions; ``k_option``/``threshold_option`` are how the caller's user names the two (the
    CLI: ``--n-clusters``, ``--threshold``). An unknown or uninstalled method fails as in
    :func:`resolve`.
    """
    cls, _ = resolve("cluster", method)
    accepted = frozenset(cls.capabilities)  # declared by the clusterer (CLUSTER_CAPABILITIES)
    if getattr(cls, "requires_n_clusters", False) and n_clusters is None:
        raise ConfigError(f"method {method!r} needs the number of clusters: pass {k_option}")
    if n_clusters is not None and "n_clusters" not in accepted:
        raise ConfigError(f"method {method!r} does not take {k_option}; it finds the number itself")
    if threshold is not None and ("threshold" not in accepted or n_clusters is not None):
        raise ConfigError(f"{threshold_option} does not apply to method {method!r}"
                          + (f" with {k_option}: both say where the clusters end, give one of them"
                             if n_clusters is not None else " (it finds the number of clusters itself)"))
    return accepted

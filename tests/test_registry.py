"""The registries: filled by decorators on the classes, capabilities that match the signatures."""

from __future__ import annotations

import inspect

import pytest

from kfree import registry
from kfree.cluster import CAPABILITIES
from kfree.exceptions import ConfigError, MissingDependencyError


@pytest.mark.parametrize("name", registry.names("cluster"))
def test_declared_capabilities_are_what_the_constructor_takes(name):
    """The learner and the CLI trust ``capabilities``; they must equal the signature's view."""
    cls, _ = registry.resolve("cluster", name) if registry.available("cluster", name) else (
        registry._entries("cluster")[name][0], {})
    params = set(inspect.signature(cls.__init__).parameters)
    assert cls.capabilities == params & CAPABILITIES, (
        f"{cls.__name__}.capabilities = {sorted(cls.capabilities)}, constructor takes "
        f"{sorted(params & CAPABILITIES)}")
    assert cls.capabilities <= CAPABILITIES
    # and the progress flag the CLI trusts is what fit takes
    assert getattr(cls, "reports_progress", False) == ("hook" in inspect.signature(cls.fit).parameters), cls.__name__


def test_every_builtin_registers_from_its_own_module():
    for kind in ("loss", "cluster"):
        for name in registry.names(kind):
            cls = registry._entries(kind)[name][0]
            assert cls.__module__.startswith(registry.PACKAGES[kind] + "."), (kind, name, cls.__module__)
    assert registry.resolve("loss", "triplet-l2")[1] == {"variant": "l2"}
    # every built-in is found (a contributor's new entry adds to these, with no edit here)
    assert {"bcl", "bcl-ft", "contrastive", "norm-softmax", "pairwise", "prototypical", "softmax", "triplet",
            "triplet-l1", "triplet-l2", "triplet-l3"} <= set(registry.names("loss"))
    assert {"finch", "gmeans", "hac", "hac-k", "hdbscan", "kmeans", "knn-cc", "multicut", "ward",
            "xmeans"} <= set(registry.names("cluster"))


def test_a_decorated_class_is_found_and_a_taken_name_refused(monkeypatch):
    monkeypatch.setitem(registry._REGISTRY, "cluster", dict(registry._entries("cluster")))

    @registry.register("cluster", "_test-method", threshold=0.5)
    class Mine:
        capabilities = frozenset({"threshold"})

        def __init__(self, threshold=None):
            self.threshold = threshold

    assert "_test-method" in registry.names("cluster")
    assert registry.get("cluster", "_test-method").threshold == 0.5
    assert registry.get("cluster", "_test-method", threshold=2.0).threshold == 2.0
    with pytest.raises(ConfigError, match="bad parameters for cluster '_test-method': .*'nope'; it takes threshold$"):
        registry.get("cluster", "_test-method", nope=1)
    @registry.register("cluster", "_test-bad-init")
    class BadInit:
        capabilities = frozenset({"threshold"})

        def __init__(self, threshold=1.0):
            self.threshold = threshold + "x"  # a TypeError of its own, whose message keeps its context

    with pytest.raises(ConfigError, match=r"'_test-bad-init': unsupported operand type\(s\) for \+: 'float' and 'str'"):
        registry.get("cluster", "_test-bad-init")
    for caps in (None, {"threshold", "eps"}, ["threshold"]):  # what fit can be told, declared and known
        undeclared = type("Undeclared", (), {} if caps is None else {"capabilities": caps})
        with pytest.raises(ConfigError, match="'_test-undeclared' .* must declare capabilities = frozenset"):
            registry.register("cluster", "_test-undeclared")(undeclared)
    assert "_test-undeclared" not in registry.names("cluster")
    # flags that contradict the capabilities (every call then failed, with K or without: a contributor trial)
    for flag, caps in (("requires_n_clusters", {"threshold"}), ("joins_single_pairs", {"n_clusters"})):
        odd = type("Odd", (), {"capabilities": frozenset(caps), flag: True})
        with pytest.raises(ConfigError, match=f"sets {flag} = True but its capabilities lack"):
            registry.register("cluster", "_test-odd")(odd)
    with pytest.raises(ConfigError, match="'hac' is taken by kfree.cluster.threshold_hac.ThresholdAgglomerative"):
        registry.register("cluster", "hac")(Mine)
    # a loss that does not set its own name is called by the name it was asked for by (its
    # messages said loss 'base'), under each of its stacked names; a built-in's own name stays
    from kfree.losses.base import EmbeddingLoss

    monkeypatch.setitem(registry._REGISTRY, "loss", dict(registry._entries("loss")))
    unnamed = type("Unnamed", (EmbeddingLoss,), {"__init__": lambda self, margin=1.0: EmbeddingLoss.__init__(self)})
    registry.register("loss", "_test-loss")(registry.register("loss", "_test-loss-strict", margin=0.5)(unnamed))
    assert registry.get("loss", "_test-loss").name == "_test-loss"
    assert registry.get("loss", "_test-loss-strict").name == "_test-loss-strict" and EmbeddingLoss.name == "base"
    assert registry.get("loss", "triplet-l2").name == "triplet"


def test_unknown_names_and_missing_packages_say_what_to_do(monkeypatch):
    with pytest.raises(ConfigError, match=r"unknown cluster 'nope'; choose one of \[.*'hac'"):
        registry.resolve("cluster", "nope")
    with pytest.raises(ConfigError, match="unknown component kind 'widget'"):
        registry.names("widget")
    monkeypatch.setitem(registry.REQUIRES, ("cluster", "hdbscan"), ("no_such_package_xyz", "baselines"))
    with pytest.raises(MissingDependencyError, match=r"pip install 'kfree\[baselines\]'"):
        registry.resolve("cluster", "hdbscan")


def test_every_module_that_registers_is_imported_by_its_package():
    """A new module whose class is decorated but never imported registers nothing: ``kfree train
    --loss NAME`` would then say the name is unknown. Every module of a kind's package with an
    ``@register`` is imported when the kind is looked up."""
    import importlib
    import sys
    from pathlib import Path

    for kind, package in registry.PACKAGES.items():
        registry.names(kind)
        folder = Path(importlib.import_module(package).__file__).parent
        for f in sorted(folder.glob("*.py")):
            if "@register(" in f.read_text():
                module = f"{package}.{f.stem}"
                assert module in sys.modules, f"{module} registers a {kind} but {package}/__init__.py does not import it"


def test_components_of_a_module_named_in_kfree_plugins_reach_the_cli(tmp_path, monkeypatch):
    """Found by a contributor trial: a loss or clusterer defined outside kfree was out of the
    CLI's reach (`kfree train --loss theirs`: unknown loss). $KFREE_PLUGINS (and the kfree.plugins
    entry-point group) names modules the first lookup imports."""
    import sys

    (tmp_path / "my_kfree_plugin.py").write_text(
        "from kfree.registry import register\n"
        "@register('cluster', '_test-plugin-method')\n"
        "class Mine:\n"
        "    capabilities = frozenset({'threshold'})\n"
        "    def __init__(self, threshold=1.0):\n"
        "        self.threshold = threshold\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setitem(registry._REGISTRY, "cluster", dict(registry._entries("cluster")))
    monkeypatch.setattr(registry, "_plugins_loaded", False)
    monkeypatch.setenv("KFREE_PLUGINS", "my_kfree_plugin")
    monkeypatch.delitem(sys.modules, "my_kfree_plugin", raising=False)
    assert "_test-plugin-method" in registry.names("cluster")
    monkeypatch.setattr(registry, "_plugins_loaded", False)
    monkeypatch.setenv("KFREE_PLUGINS", "no_such_kfree_plugin")
    with pytest.raises(ConfigError, match="the kfree plugin KFREE_PLUGINS module 'no_such_kfree_plugin' cannot be "
                                          "imported: ModuleNotFoundError"):
        registry.names("cluster")
    monkeypatch.setattr(registry, "_plugins_loaded", True)  # (the rest of the session as it was)

"""Ctrl-C and ``kill`` end a command inside a long compiled call (:mod:`kfree.utils.signals`)."""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap

import numpy as np
import pytest

CHILD = textwrap.dedent("""
    import signal, sys, time
    from kfree.utils.signals import stop_at_once_in_compiled_calls, stoppable

    def handler(signum, frame):  # a Python handler (the CLI's raises), run only between bytecodes
        sys.exit(3)

    signal.signal(signal.SIGTERM, handler)
    stop_at_once_in_compiled_calls(sys.argv[1] == "on")
    with stoppable():
        print("ready", flush=True)
        time.sleep(60)
    """)


@pytest.mark.parametrize("enabled", [True, False])
@pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")
def test_sigterm_ends_the_process_at_once_inside_a_stoppable_call(enabled):
    """Enabled (the CLI), SIGTERM inside ``stoppable`` takes the default action: the process ends
    by the signal, its Python handler never runs. Not enabled (a notebook), the handler runs."""
    p = subprocess.Popen([sys.executable, "-c", CHILD, "on" if enabled else "off"], stdout=subprocess.PIPE, text=True)
    try:
        assert p.stdout.readline().strip() == "ready"
        p.send_signal(signal.SIGTERM)
        code = p.wait(timeout=30)
    finally:
        p.kill()
    assert code == (-signal.SIGTERM if enabled else 3)


def test_the_long_linkages_run_stoppable_and_restore_the_handlers(monkeypatch):
    """Every dense linkage (and Ward's) runs with the default actions; the handlers are back after it."""
    import fastcluster

    from kfree.cluster import ThresholdAgglomerative
    from kfree.cluster.ward import ward_tree
    from kfree.utils import signals

    seen = []

    def spy(real):
        def call(*args, **kwargs):
            seen.append((signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)))
            return real(*args, **kwargs)
        return call

    monkeypatch.setattr(fastcluster, "linkage", spy(fastcluster.linkage))
    monkeypatch.setattr(fastcluster, "linkage_vector", spy(fastcluster.linkage_vector))
    monkeypatch.setitem(signals._STATE, "enabled", True)
    before = signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)
    X = np.random.default_rng(0).normal(size=(60, 4))
    ThresholdAgglomerative(threshold=2.0, linkage="complete", algorithm="dense").fit(X)
    ward_tree(X)
    assert seen == [(signal.SIG_DFL, signal.SIG_DFL)] * 2
    assert (signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)) == before
    monkeypatch.setitem(signals._STATE, "enabled", False)  # a library user's: nothing changes
    ward_tree(X)
    assert seen[-1] == before


def test_the_components_pass_runs_stoppable(monkeypatch):
    """Found by a scale trial: kill and Ctrl-C waited minutes for the τ-components pass (one
    compiled call) of 100,000 face descriptors; only SIGKILL ended it."""
    from kfree.cluster import _radius_graph
    from kfree.utils import signals

    seen = []
    real = _radius_graph._components_kernel

    def spy(*args):
        seen.append(signal.getsignal(signal.SIGTERM))
        return real(*args)

    monkeypatch.setattr(_radius_graph, "_components_kernel", spy)
    monkeypatch.setitem(signals._STATE, "enabled", True)
    X = np.random.default_rng(0).normal(size=(300, 3))
    labels = _radius_graph.radius_components(X, 0.5)
    assert seen == [signal.SIG_DFL] and labels.shape == (300,)


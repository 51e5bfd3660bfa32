"""Claims as data: each verdict comes from the test it names."""

from __future__ import annotations

import pytest
from scipy import stats

from kfree.exceptions import ConfigError
from kfree_reproductions.claims import evaluate_claims, load_claims, verdicts_markdown

DATA = {
    ("a", 0): {0: 80.0, 1: 81.0, 2: 79.5},
    ("b", 0): {0: 70.0, 1: 72.0, 2: 71.0},
    ("c", 0): {0: 79.0, 1: 82.0, 2: 80.0},
    ("a", 1): {0: 79.9, 1: 80.8, 2: 79.6},
    ("b", 1): {0: 60.0, 1: 61.0, 2: 63.0},
}


def look(sel):
    return DATA.get((sel["loss"], sel.get("pos", 0)))


def one(claim, **kw):
    return evaluate_claims([claim], look, **kw)[0]


def test_greater_uses_welchs_t_and_reports_its_p_value():
    v = one({"text": "a > b", "kind": "greater", "a": {"loss": "a"}, "b": {"loss": "b"}})
    p = stats.ttest_ind(list(DATA[("a", 0)].values()), list(DATA[("b", 0)].values()), equal_var=False,
                        alternative="greater").pvalue
    assert v.verdict == "holds" and v.test == "Welch's t, one-sided" and f"p = {p:.3g}" in v.evidence
    assert one({"text": "b > a", "kind": "greater", "a": {"loss": "b"}, "b": {"loss": "a"}}).verdict == "contradicted"
    # close means, large spread: neither way
    assert one({"text": "a > c", "kind": "greater", "a": {"loss": "a"}, "b": {"loss": "c"}}).verdict == "not shown"
    assert one({"text": "x", "kind": "greater", "a": {"loss": "z"}, "b": {"loss": "a"}}).verdict == "not measured"


def test_drops_are_paired_by_seed_and_within_uses_tost():
    v = one({"text": "b drops most", "kind": "largest_drop", "loss": "b", "others": ["a"],
             "clean": {"pos": 0}, "noisy": {"pos": 1}})
    assert v.verdict == "holds" and "per-seed drops" in v.test
    w = one({"text": "a within 1", "kind": "within", "method": "m", "losses": ["a"], "margin": 1.0,
             "clean": {"pos": 0}, "noisy": {"pos": 1}})
    assert w.verdict == "holds" and "TOST" in w.test
    w = one({"text": "b within 1", "kind": "within", "method": "m", "losses": ["b"], "margin": 1.0,
             "clean": {"pos": 0}, "noisy": {"pos": 1}})
    assert w.verdict == "contradicted"


def test_one_seed_is_compared_and_says_it_was_not_tested():
    def single(sel):
        return {0: {"a": 2.0, "b": 1.0}[sel["loss"]]}

    v = evaluate_claims([{"text": "t", "kind": "greater", "a": {"loss": "a"}, "b": {"loss": "b"}}], single)[0]
    assert v.verdict == "holds" and v.test == "one seed: values compared, no test"
    v = evaluate_claims([{"text": "t", "kind": "at_least", "groups": [{"loss": "a"}], "value": 1.5}], single)[0]
    assert v.verdict == "holds" and "no test" in v.test


def test_claim_files_are_checked(tmp_path):
    f = tmp_path / "c.toml"
    f.write_text('[[claim]]\ntext = "x"\nkind = "bigger"\n')
    with pytest.raises(ConfigError, match="needs a text and a kind"):
        load_claims(f)
    f.write_text('[[claim]]\ntext = "x"\nkind = "greater"\na = [{ loss = "a" }]\nb = [{ loss = "b" }, { loss = "c" }]\n'
                 'pairing = "zip"\n')
    with pytest.raises(ConfigError, match="pairing='zip' needs as many a as b"):
        evaluate_claims(load_claims(f), look)
    assert verdicts_markdown([], alpha=0.01).startswith("Each claim is judged over seeds at α = 0.01")


def test_the_shipped_icpr_claims_load():
    from kfree_reproductions.icpr2020.report import CLAIMS

    claims = load_claims(CLAIMS)
    assert len(claims) == 28 and {c["kind"] for c in claims} >= {"greater", "largest_drop", "within", "at_least"}

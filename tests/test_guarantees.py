"""A skipped `guarantee` test fails the run (tests/conftest.py): a promise nobody checked is not kept."""

from __future__ import annotations

from pathlib import Path

import pytest

TESTS = '''
import pytest

@pytest.fixture
def server():
    pytest.skip("no server here")

@pytest.mark.guarantee
def test_kept():
    pass

@pytest.mark.guarantee
def test_unchecked_promise():
    pytest.skip("cannot show it on this machine")

@pytest.mark.guarantee
def test_unchecked_through_a_fixture(server):
    pass

def test_a_feature_skip():
    pytest.skip("an ordinary skip guards no promise")

@pytest.mark.guarantee
@pytest.mark.xfail(reason="known and said", strict=True)
def test_a_known_failure():
    assert False
'''


@pytest.fixture
def suite(pytester):
    pytester.makeconftest((Path(__file__).parent / "conftest.py").read_text())
    pytester.makeini("[pytest]\nmarkers =\n    guarantee: guards a promise\n")
    pytester.makepyfile(test_promises=TESTS)
    return pytester


def test_a_skipped_guarantee_fails_the_run_and_names_the_test(suite, monkeypatch):
    monkeypatch.delenv("GIST_ALLOW_GUARANTEE_SKIPS", raising=False)
    result = suite.runpytest("-p", "no:cacheprovider")
    result.assert_outcomes(passed=1, skipped=3, xfailed=1)
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines(["*guarantees skipped*",
                                 "test_promises.py::test_unchecked_promise: cannot show it on this machine",
                                 "test_promises.py::test_unchecked_through_a_fixture: no server here",
                                 "the run fails: these promises went unchecked*"])
    assert "test_a_feature_skip" not in result.stdout.str() and "test_a_known_failure:" not in result.stdout.str()


def test_only_guarantees_fail_the_run_and_a_developer_may_allow_their_skips(suite, monkeypatch):
    monkeypatch.delenv("GIST_ALLOW_GUARANTEE_SKIPS", raising=False)
    assert suite.runpytest("-p", "no:cacheprovider", "-k", "kept or feature or known").ret == pytest.ExitCode.OK
    monkeypatch.setenv("GIST_ALLOW_GUARANTEE_SKIPS", "1")
    result = suite.runpytest("-p", "no:cacheprovider")
    assert result.ret == pytest.ExitCode.OK
    result.stdout.fnmatch_lines(["*guarantees skipped*",
                                 "GIST_ALLOW_GUARANTEE_SKIPS is set: the run passes without them"])


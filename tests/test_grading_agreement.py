"""No false negatives (or positives) from the boundary: the grader and the notebook check agree.

Every function of the wrong-versions catalogue (tests/wrong_versions.py) and every honest variant is
checked twice with the same ``pg.checks.check_<name>``: once on the local function (as in a notebook)
and once through the grader's data-only link, the function living in a sandboxed student process. The
verdict (pass / named mistake / crash) must be the same, and a named mistake the same hint.
"""
from __future__ import annotations

import contextlib
import io
import time
from pathlib import Path

import pytest
import torch

import pgcourse as pg
import wrong_versions
from pgcourse.course.checks import LearnerCodeError
from pgcourse.classroom.sandboxed.link import StudentFunction
from pgcourse.classroom.grading.sandbox import SANDBOX, UNSAFE, Limits, probe_sandbox
from pgcourse.classroom.grading.worker import StudentProcess

# Honest answers that an earlier grader rejected or that stress the wire: views, strides, other dtypes.
HONEST = {  # every source starts with the imports it needs, as an answer cell would
    "action_log_probs": {
        "one_element_strided_view": "import torch\ndef action_log_probs(logits, actions):\n"
                                    "    logp = torch.log_softmax(logits, dim=-1)\n"
                                    "    if logits.shape[0] == 1:\n"
                                    "        return logp[:, int(actions[0])]  # a view with stride 2 when B = 1\n"
                                    "    return logp.gather(-1, actions.long().unsqueeze(-1)).squeeze(-1)\n",
        "transposed_view": "import torch\ndef action_log_probs(logits, actions):\n"
                           "    logp = torch.log_softmax(logits, dim=-1).t()\n"
                           "    return logp[actions.long(), torch.arange(actions.shape[0])]\n",
    },
    "discounted_returns": {
        "reversed_view": "import torch\ndef discounted_returns(rewards, gamma):\n"
                         "    out, running = [], torch.zeros((), dtype=rewards.dtype)\n"
                         "    for r in rewards.detach().flip(0):\n"
                         "        running = r + gamma * running\n"
                         "        out.append(running)\n"
                         "    return torch.stack(out).flip(0)\n",
    },
    "normalize": {
        "expanded_view_of_a_column": "import torch\ndef normalize(x, eps=1e-8):\n"
                                     "    y = (x - x.mean()) / (x.std(unbiased=False) + eps)\n"
                                     "    return y.reshape(-1, 1).expand(-1, 3)[:, 1].reshape(x.shape)\n",
    },
}


def remote_name(exercise: str, variant: str) -> str:
    return f"{exercise}__{variant}"


@pytest.fixture(scope="module")
def student_process(runner_folder):
    mode = SANDBOX if probe_sandbox()[0] == SANDBOX else UNSAFE
    runner = runner_folder
    process = StudentProcess({"isolation": mode, "limits": Limits().to_dict(), "runner_folder": str(runner)},
                             time.monotonic() + 120)
    link = process.link
    link.deadline = time.monotonic() + 120
    sources = [Path(wrong_versions.__file__).read_text()]
    sources += [source.replace(f"def {exercise}(", f"def {remote_name(exercise, variant)}(")
                for exercise, variants in HONEST.items() for variant, source in variants.items()]
    for number, source in enumerate(sources):
        answer = link._answer(link.request("exec", {"source": source, "filename": f"<source {number}>"}))
        assert not answer.get("error"), answer.get("error")
    link.deadline = None
    yield process
    process.end()


def verdict(check, fn) -> tuple[str, str]:
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            check(fn)
    except AssertionError as error:
        return "rejected", str(error)
    except LearnerCodeError as error:
        return "crash", str(error)
    return "passed", ""


def both_ways(student_process, exercise: str, local_fn, remote_name: str):
    check = pg.checks.ALL_CHECKS[exercise]
    torch.manual_seed(0)
    local = verdict(check, local_fn)
    student_process.link.deadline = time.monotonic() + 60
    try:
        torch.manual_seed(0)
        remote = verdict(check, StudentFunction(student_process.link, remote_name))
    finally:
        student_process.link.deadline = None
    return local, remote


@pytest.mark.parametrize("version", wrong_versions.WRONG_VERSIONS, ids=lambda v: v.id)
def test_wrong_versions_get_the_same_verdict_and_hint(student_process, version):
    local, remote = both_ways(student_process, version.exercise, version.fn, version.fn.__name__)
    assert local[0] == remote[0], f"notebook: {local}\ngrader: {remote}"
    if local[0] == "rejected":
        assert version.hint in local[1] and version.hint in remote[1], remote[1]


@pytest.mark.parametrize("exercise, fn", wrong_versions.CORRECT_VERSIONS,
                         ids=[f"{exercise}:{fn.__name__}" for exercise, fn in wrong_versions.CORRECT_VERSIONS])
def test_correct_versions_pass_both_ways(student_process, exercise, fn):
    local, remote = both_ways(student_process, exercise, fn, fn.__name__)
    assert local[0] == remote[0] == "passed", f"notebook: {local}\ngrader: {remote}"


@pytest.mark.parametrize("exercise, variant", [(exercise, variant) for exercise, variants in HONEST.items()
                                               for variant in variants])
def test_honest_variants_pass_both_ways(student_process, exercise, variant):
    namespace: dict = {"torch": torch}
    exec(HONEST[exercise][variant], namespace)  # noqa: S102 - the test's own source
    local, remote = both_ways(student_process, exercise, namespace[exercise], remote_name(exercise, variant))
    assert local[0] == remote[0] == "passed", f"notebook: {local}\ngrader: {remote}"

"""The thread pool the BM25 searches run on (qa.retrieval): one per process."""

from __future__ import annotations

import os

from articleqa.qa import retrieval


def test_a_forked_child_gets_a_pool_of_its_own():
    """The parent's pool threads do not exist in a forked child: work sent to that pool would
    wait forever, so the child makes its own pool and the work runs."""
    parent_pool = retrieval._lexical_pool()
    assert parent_pool.submit(lambda: 41 + 1).result(timeout=10) == 42
    assert retrieval._lexical_pool() is parent_pool  # one pool per process, reused
    pid = os.fork()
    if pid == 0:  # the child: exit 0 only if its pool runs the work
        code = 1
        try:
            pool = retrieval._lexical_pool()
            code = 0 if pool is not parent_pool and pool.submit(lambda: 42).result(timeout=10) == 42 else 1
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0

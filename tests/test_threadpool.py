"""The CPU thread pool (targets/cpu/threadpool.ll): every chunk once, num_threads honoured,
nested and concurrent calls, a failing chunk, fork; parallel kernels against numpy."""
import os
import threading

import numpy as np
import pytest

import tcomp
from tcomp import tir
from tcomp.targets.cpu import threadpool

LIVENESS_S = 60  # how long a chunk waits for another thread before the test gives up


@pytest.fixture(scope="module")
def parallel_for():
    return threadpool.parallel_for()


def _recording_body(chunk_hook=None):
    """A body that records (chunk, thread id); ``chunk_hook(chunk)`` runs first."""
    hits = []
    lock = threading.Lock()

    @threadpool.BODY
    def body(closure, chunk):
        if chunk_hook is not None:
            chunk_hook(chunk)
        with lock:
            hits.append((chunk, threading.get_native_id()))

    return body, hits


@pytest.mark.parametrize("threads", [1, 2, 3, 8])
@pytest.mark.parametrize("chunks", [0, 1, 2, 7, 64])
def test_every_chunk_runs_once_on_at_most_num_threads(parallel_for, chunks, threads):
    body, hits = _recording_body(lambda chunk: threading.Event().wait(0.0005))
    parallel_for(body, None, chunks, threads)
    assert sorted(c for c, _ in hits) == list(range(chunks))
    assert len({t for _, t in hits}) <= threads
    if threads == 1:
        assert {t for _, t in hits} <= {threading.get_native_id()}


def _needs_a_second_thread():
    """A body whose chunk 0 waits (on the caller) until a chunk runs on another thread; the caller
    claims chunk 0 first, so it finishes only if a worker joins."""
    caller = threading.get_native_id()
    other = threading.Event()

    def hook(chunk):
        if threading.get_native_id() != caller:
            other.set()
        elif chunk == 0:
            other.wait(LIVENESS_S)

    body, hits = _recording_body(hook)
    return body, hits, other


def test_workers_join(parallel_for):
    body, hits, other = _needs_a_second_thread()
    parallel_for(body, None, 4, 2)
    assert other.is_set() and sorted(c for c, _ in hits) == [0, 1, 2, 3]


def test_caller_takes_the_chunks_of_a_stalled_worker(parallel_for):
    """A worker stuck in its first chunk keeps only that one: the caller runs its own share and
    the rest of the worker's (the worker is released once the caller has run 7 of 8)."""
    caller = threading.get_native_id()
    release = threading.Event()
    ran_by_caller = []

    def hook(chunk):
        if threading.get_native_id() != caller:
            release.wait(LIVENESS_S)
        else:
            ran_by_caller.append(chunk)
            if len(ran_by_caller) == 7:
                release.set()

    body, hits = _recording_body(hook)
    parallel_for(body, None, 8, 2)
    assert sorted(c for c, _ in hits) == list(range(8))
    assert len(ran_by_caller) >= 7 and release.is_set()


def test_workers_start_again_in_a_forked_child(parallel_for):
    parallel_for(_recording_body()[0], None, 8, 2)  # workers exist in the parent
    pid = os.fork()
    if pid == 0:  # the child has only this thread; the pool must start new workers
        body, hits, other = _needs_a_second_thread()
        parallel_for(body, None, 4, 2)
        os._exit(0 if other.is_set() and sorted(c for c, _ in hits) == [0, 1, 2, 3] else 1)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0


def test_nested_call_runs_inline(parallel_for):
    inner_body, inner_hits = _recording_body()

    def hook(chunk):
        parallel_for(inner_body, None, 3, 2)

    outer_body, outer_hits = _recording_body(hook)
    parallel_for(outer_body, None, 5, 2)
    assert sorted(c for c, _ in outer_hits) == list(range(5))
    assert sorted(c for c, _ in inner_hits) == sorted(list(range(3)) * 5)


@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
def test_a_failing_chunk_leaves_the_pool_usable(parallel_for):
    """A chunk that raises (ctypes reports the exception and returns) ends like any other: the
    region finishes, and later regions run every chunk."""
    def hook(chunk):
        if chunk % 3 == 1:
            raise RuntimeError(f"chunk {chunk} fails")

    failing, hits = _recording_body(hook)
    parallel_for(failing, None, 12, 2)
    assert sorted(c for c, _ in hits) == [c for c in range(12) if c % 3 != 1]
    body, hits = _recording_body()
    parallel_for(body, None, 12, 2)
    assert sorted(c for c, _ in hits) == list(range(12))


def _parallel_add(n: int, threads: int):
    """``C = A + 1`` with the outer loop parallel (n rows of 16: a tiny region)."""
    a = tir.placeholder((n, 16), "float32", name="A")
    c = tir.compute((n, 16), lambda i, j: a[i, j] + 1.0, name="C")
    sch = tcomp.Schedule(tir.create_func([a, c]))
    i, _ = sch.get_loops(sch.get_block("C"))
    sch.parallel(i)
    return tcomp.build(sch.func, num_threads=threads)


@pytest.mark.parametrize("threads", [1, 2, 3])
@pytest.mark.parametrize("n", [2, 5, 37])
def test_many_tiny_regions(n, threads):
    kernel = _parallel_add(n, threads)
    rng = np.random.default_rng()
    for _ in range(300):
        a = rng.standard_normal((n, 16)).astype(np.float32)
        np.testing.assert_array_equal(kernel(a), a + 1)


def test_kernels_from_several_python_threads():
    """Concurrent callers: one gets the pool, the others run their chunks themselves."""
    kernel = _parallel_add(37, 2)
    errors = []

    def run():
        rng = np.random.default_rng()
        for _ in range(200):
            a = rng.standard_normal((37, 16)).astype(np.float32)
            if not np.array_equal(kernel(a), a + 1):
                errors.append("wrong result")

    threads = [threading.Thread(target=run) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []


def test_symbolic_extent_below_the_chunk_count():
    """A symbolic parallel extent: the chunk count is decided at run time (n = 1 .. 9 with 2
    threads: fewer, as many and more iterations than chunks)."""
    n = tir.size_var("n")
    a = tir.placeholder((n, 8), "float32", name="A")
    c = tir.compute((n, 8), lambda i, j: a[i, j] * 2.0, name="C")
    sch = tcomp.Schedule(tir.create_func([a, c]))
    i, _ = sch.get_loops(sch.get_block("C"))
    sch.parallel(i)
    kernel = tcomp.build(sch.func, num_threads=2)
    rng = np.random.default_rng()
    for rows in range(1, 10):
        a = rng.standard_normal((rows, 8)).astype(np.float32)
        np.testing.assert_array_equal(kernel(a), a * 2)

"""advisor.idle: work taken in steps by a reader while its pipe is empty, on real pipes."""

from __future__ import annotations

import os
import threading
import time

import pytest

from advisor import idle
from advisor.parse.perf_spawn import PolledPipe


def recording_steps(log: list, count: int, pause: float = 0.0):
    """A generator of `count` steps that notes each one (its thread and time), returning 'done'."""
    for index in range(count):
        log.append((index, threading.current_thread().name, time.monotonic()))
        if pause:
            time.sleep(pause)
        yield
    return "done"


def write_later(fd: int, data: bytes, delay: float) -> threading.Thread:
    def write():
        time.sleep(delay)
        try:
            os.write(fd, data)
        except BrokenPipeError:  # the reader has gone (a test that stops it)
            pass
        os.close(fd)

    thread = threading.Thread(target=write)
    thread.start()
    return thread


def test_a_reader_takes_steps_while_its_pipe_is_empty_and_the_rest_come_from_result():
    log: list = []
    read_end, write_end = os.pipe()
    writer = write_later(write_end, b"perf's first line\n", 0.1)
    with PolledPipe(read_end) as pipe, idle.Steps(recording_steps(log, 1000, pause=0.001)) as work:
        started = time.monotonic()
        assert pipe.read1(1 << 16) == b"perf's first line\n"
        waited = time.monotonic() - started
        taken_by_reader = len(log)
        assert work.result() == "done"
    writer.join()
    assert waited >= 0.09
    assert 0 < taken_by_reader < 1000  # steps while it waited (1000 of 1 ms do not fit in 0.1 s)
    assert len(log) == 1000 and [index for index, _, _ in log] == list(range(1000))
    assert log[-1][1] == threading.current_thread().name


def test_no_step_is_taken_while_there_is_something_to_read():
    log: list = []
    read_end, write_end = os.pipe()
    os.write(write_end, b"x" * 100)
    with PolledPipe(read_end) as pipe, idle.Steps(recording_steps(log, 5)):
        assert pipe.read1(10) == b"x" * 10
        assert pipe.read1(1 << 16) == b"x" * 90
        assert log == []
        os.close(write_end)
        assert pipe.read1(10) == b""  # end of file: nothing to wait for, no step either
        assert log == []


def test_without_pending_work_the_reader_sleeps_and_steps_are_taken_only_inside_the_block():
    log: list = []
    work = idle.Steps(recording_steps(log, 3))
    assert idle.step() is False  # not entered: nothing pending
    with work:
        assert idle.step() is True
    assert idle.step() is False and len(log) == 1


def test_leaving_the_block_closes_the_generator():
    closed = []

    def steps():
        try:
            while True:
                yield
        finally:
            closed.append(True)

    with idle.Steps(steps()):
        assert idle.step()
    assert closed == [True]


def test_an_error_in_a_step_is_raised_by_result_not_in_the_reader():
    def failing():
        yield
        raise ModuleNotFoundError("No module named 'rich'")

    read_end, write_end = os.pipe()
    writer = write_later(write_end, b"data", 0.05)
    with PolledPipe(read_end) as pipe, idle.Steps(failing()) as work:
        assert pipe.read1(100) == b"data"  # the reader read on
        with pytest.raises(ModuleNotFoundError, match="rich"):
            work.result()
        assert idle.step() is False  # finished: nothing more to take
    writer.join()


def test_an_interrupt_in_a_step_stops_the_reader():
    def interrupted():
        yield
        raise KeyboardInterrupt

    read_end, write_end = os.pipe()
    writer = write_later(write_end, b"late", 0.5)  # without the step, the reader would get this
    with PolledPipe(read_end) as pipe, idle.Steps(interrupted()):
        with pytest.raises(KeyboardInterrupt):
            pipe.read1(100)
    writer.join()


def test_two_readers_never_take_steps_at_once():
    """Time slices have a reader each: one step at a time, each step whole."""
    log: list = []
    inside = threading.Lock()
    overlaps = []

    def exclusive_steps():
        for index in range(40):
            if not inside.acquire(blocking=False):
                overlaps.append(index)
            else:
                time.sleep(0.002)
                inside.release()
            log.append(index)
            yield

    pipes = [os.pipe() for _ in range(2)]
    writers = [write_later(w, b"end", 0.15) for _, w in pipes]
    got = []
    with idle.Steps(exclusive_steps()) as work:
        readers = [threading.Thread(target=lambda fd=r: got.append(PolledPipe(fd).read1(10))) for r, _ in pipes]
        for reader in readers:
            reader.start()
        for reader in readers:
            reader.join()
        work.result()
    for writer in writers:
        writer.join()
    assert got == [b"end", b"end"] and overlaps == [] and log == list(range(40))

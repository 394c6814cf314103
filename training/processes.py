"""Worker processes for the data jobs (corpus synthesis, face rendering, decoding a dataset before a run).

They start from a fork server, not a plain fork: the caller is often multithreaded (a TensorBoard
writer, the batch prefetcher, Qt, pytest's timeout thread), and a child forked while another thread
holds a lock can wait on it forever. The server itself is forked early from a clean, single-threaded
process, with torch and the job modules imported once, so each child still starts in milliseconds.
"""
from __future__ import annotations

import multiprocessing as mp

# imported once by the fork server; every worker inherits them (an unknown name is skipped)
PRELOAD = ["numpy", "torch", "training.data.synth", "training.batches"]


def context():
    """The multiprocessing context for data workers: forkserver where it exists, else spawn."""
    if "forkserver" not in mp.get_all_start_methods():
        return mp.get_context("spawn")
    ctx = mp.get_context("forkserver")
    ctx.set_forkserver_preload(PRELOAD)  # only read when the server starts, i.e. once per process
    return ctx

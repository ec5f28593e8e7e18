"""A data reader as a Ray dataset whose rows are the reader's batches.

One Ray Data read task runs the reader (``get_next() -> feed dict | None``, sent to the worker
pickled) and yields one block per batch: row ``{"index": k, "batch": <the k-th feed, pickled>}``.
Ray Data streams those blocks to the actors that consume them (with backpressure), so neither the
driver nor any worker holds more than the reader itself and a few batches in flight; a directory
of shards (:class:`onnx2snn.data.NpzShardReader`) is read on the worker, never on the driver.

Invariant: row k holds the reader's k-th batch unchanged (the same arrays, the same batch
boundaries as a local run over the same reader), and every batch is one row; the actors may see
the rows in any order, so results are reduced from integer counts or exact merges keyed by index.
The read task takes no CPU of its own (the actors take them all); the caller runs it under a
``DataContext.target_max_block_size`` of 1 byte, so that Ray Data keeps every row a block of its
own (it would pack small rows into one block, which one actor would then take whole).
"""
from __future__ import annotations

import pickle


def decode(blob: bytes) -> dict:
    return pickle.loads(blob)


def batch_dataset(ray, reader):
    """A Ray Dataset of the batches of ``reader`` (see the module docstring)."""
    import pyarrow as pa
    from ray.data.block import BlockMetadata
    from ray.data.datasource import Datasource, ReadTask

    rows = len(reader) if hasattr(reader, "__len__") else None
    stored = ray.put(reader)  # the read task fetches it from the object store (its own code stays small)

    def read():
        reader = ray.get(stored)
        k = 0
        while (feed := reader.get_next()) is not None:
            blob = pickle.dumps(feed, protocol=pickle.HIGHEST_PROTOCOL)
            yield pa.table({"index": pa.array([k], pa.int64()), "batch": pa.array([blob], pa.large_binary())})
            k += 1

    class ReaderDatasource(Datasource):
        def estimate_inmemory_data_size(self):
            return None

        def get_read_tasks(self, parallelism, per_task_row_limit=None, data_context=None):
            return [ReadTask(read, BlockMetadata(num_rows=rows, size_bytes=None, exec_stats=None, input_files=None))]

    return ray.data.read_datasource(ReaderDatasource(), num_cpus=0, override_num_blocks=1)

"""What bounds a worker's memory besides its metrics' states: the bytes of messages it
holds before they are stored (defaults of :class:`streaming.worker.WorkerSettings`, here
so the command line can show them without importing Faust).

Faust fetches ahead of each stream's agent; the agent gathers a micro-batch from what
was fetched and holds it until it is stored. Bounded by message counts only (1,024
fetched ahead, 4,000 a micro-batch), 70 KB messages of 500 events held 350 MB in the
Faust process. What is fetched ahead is bounded in bytes as well (PREFETCH_BYTES, plus
what the Kafka client has in flight: a fetch of up to 1 MB per partition), and so is a
micro-batch (TAKE_BYTES, :mod:`streaming.micro_batches`).
"""

# of message values fetched ahead, per stream: 8 MB, not 16, since the agent holds a
# micro-batch decoding besides the one being stored (streaming.pre_decode); a fetch
# ahead of 8 MB still covers the processor's store of a full micro-batch
PREFETCH_BYTES = 8 * 1024 * 1024
TAKE_BYTES = 8 * 1024 * 1024  # of message values in a micro-batch

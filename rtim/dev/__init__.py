"""`rtim dev`: the whole product on one machine, watched and reported."""

__all__ = ["DEV_PARTITIONS"]

#: Partitions per topic when `rtim dev` creates its topics on the embedded broker: one worker
#: needs no more, and that broker's fetch cost grows with the batches of each partition.
DEV_PARTITIONS = 2

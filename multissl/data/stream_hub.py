"""Hub datasets read as streams (recipe `dataset: owner/name` with a `streaming:` section, on a machine online).

`datasets.load_dataset(name, split=split, streaming=True, **dataset_args)` gives an IterableDataset of `num_shards`
shards (the data files of the hub repository). streaming.HubRowStream puts it through the RowStream machinery
unchanged, shard indices standing where local files stand:

* **Epoch order.** An epoch reads the shards in RowStream's seeded per-epoch permutation: its stream is
  `concatenate_datasets([ds.shard(num_shards, i) for i in order])`, one shard each, so it keeps the hub dataset's
  `num_shards` and the permuted shard order.
* **Nodes.** `split_dataset_by_node` splits that concatenation as it splits local files: whole shards per
  (process, loader stream) node when the shard count divides by the node count, else every node reads every shard
  and keeps every n-th row. No row goes to two nodes or to none.
* **Positions.** A window starts at the concatenation's `state_dict()` (which shard, which row inside it), as for
  local files; datasets' own `shuffle` (whose buffer is not in `state_dict()`) is not used.

Why `state_dict()` / `load_state_dict()` and not `IterableDataset.shard(num_shards, index)` alone: shard() picks a
node's shards but has no position inside one, so a resume could only restart at a shard boundary (re-reading or
skipping rows); a fixed per-node shard list would also read the shards in one order every epoch. shard() is used only
to cut the dataset into its shards; the position is datasets' state, which names the shard and the row within it.

What no position can guarantee: that the hub serves the same rows on `--resume` as before the stop (a push to the
repository changes files and rows under the saved position). So a hub stream resumes only when `dataset_args.revision`
pins a commit (40 hex digits); otherwise resuming is refused with one line, rather than resumed at a wrong row.

This module imports nothing of multissl (streaming.py imports it lazily).
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Any

COMMIT = re.compile(r"[0-9a-f]{40}")


def is_hub_name(source: str, shard_suffixes: Any = ()) -> bool:
    """True for a name that is not an existing local path and can only be a hub dataset (`name` or `owner/name`).

    A leading `/`, `.` or `~`, a backslash, more than one `/` or a shard file's suffix make it a local path, whose
    absence is then FileNotFoundError, not a trip to the hub."""
    if Path(source).expanduser().exists():
        return False
    return not (source.startswith(("/", ".", "~")) or "\\" in source or source.count("/") > 1
                or Path(source).suffix.lower() in shard_suffixes)


def load_hub_stream(source: str, split: str, load_kwargs: dict[str, Any]):
    """`datasets.load_dataset(source, split=split, streaming=True, **load_kwargs)`: one streamed split
    (datasets.IterableDataset), or one ValueError line saying why not."""
    import datasets

    try:
        ds = datasets.load_dataset(source, split=split, streaming=True, **load_kwargs)
    except Exception as err:  # offline, unknown repository, gated, bad config name: datasets raises many kinds
        first = (str(err).strip().splitlines() or [""])[0]
        raise ValueError(f"cannot stream {source!r}: it is not a local path or a built-in dataset, and the hub did not "
                         f"give split {split!r} ({type(err).__name__}: {first}); check the name, dataset_args, and that "
                         "this machine is online") from err
    if not isinstance(ds, datasets.IterableDataset):
        raise ValueError(f"cannot stream {source!r}: datasets.load_dataset returned {type(ds).__name__}, not one "
                         "streamed split; set dataset_split")
    return ds


def shards_in_order(ds, order: list[int]):
    """`ds` (an IterableDataset of len(order) shards) with its shards read in `order`, one sub-stream per shard."""
    import datasets

    return datasets.concatenate_datasets([ds.shard(num_shards=ds.num_shards, index=i) for i in order])


def unpinned_revision(source: str, load_kwargs: dict[str, Any]) -> str | None:
    """One line when resuming could read other rows than the run saw (the revision is not a commit), else None."""
    revision = load_kwargs.get("revision")
    if isinstance(revision, str) and COMMIT.fullmatch(revision):
        return None
    return (f"cannot resume the stream of hub dataset {source!r} exactly: dataset_args.revision is {revision!r}, not a "
            "commit (40 hex digits), so the hub may now serve other rows than the checkpoint's position counts; start "
            "a new --output-dir with dataset_args.revision pinned to the dataset's commit")

"""Data-parallel training on MindSpore's own runtime: HCCL (Ascend), NCCL (GPU) or MCCL (CPU), started by msrun
or by the rank-table launcher. Gradients are averaged across devices (the model zoo sums them by declaring one
device); every rank starts from the same seeded weights and reads its own shard of the data.
"""
from dataclasses import dataclass

from src.cpu.device import msrun_role
from src.errors import UserError


@dataclass(frozen=True)
class World:
    rank: int = 0
    size: int = 1

    @property
    def is_main(self):
        """Rank 0 writes the run directory's shared files (checkpoints, grids, metrics, config, report)."""
        return self.rank == 0


def init_world(run_distribute):
    """Join the job (the backend follows the device target) and set data-parallel mode with averaged gradients."""
    if not run_distribute:
        return World()
    import mindspore as ms
    from mindspore.communication import get_group_size, get_rank, init

    try:
        init()
    except (RuntimeError, ValueError) as error:
        if msrun_role() == "MS_SCHED":  # msrun's scheduler: init() returns when the job ends
            raise UserError(f"the distributed job failed: {str(error).splitlines()[0]}") from None
        raise UserError("--run_distribute needs a distributed launcher (scripts/run_distribute_train_msrun.sh or "
                        f"scripts/run_distribute_train.sh): {str(error).splitlines()[0]}") from None
    world = World(rank=get_rank(), size=get_group_size())
    ms.set_auto_parallel_context(parallel_mode=ms.ParallelMode.DATA_PARALLEL, gradients_mean=True,
                                 device_num=world.size)
    return world


def stop_vote(world):
    """f(flag) -> whether any rank asked to stop (flag True on at least one rank), for a data-parallel run: every
    rank must stop after the same step, or the others would wait forever in the next step's all-reduce. A single
    process needs no vote."""
    if world.size == 1:
        return lambda flag: flag
    import mindspore as ms
    import mindspore.nn as nn
    import mindspore.ops as ops
    import numpy as np

    class AnyRank(nn.Cell):
        def __init__(self):
            super().__init__()
            self.reduce = ops.AllReduce(ops.ReduceOp.SUM)  # MAX is not available on CPU

        def construct(self, flag):
            return self.reduce(flag)

    vote = AnyRank()
    return lambda flag: bool(vote(ms.Tensor(np.array([float(flag)], np.float32))).asnumpy()[0] > 0)

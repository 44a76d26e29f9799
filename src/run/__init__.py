"""A training run on disk and in time: its directory, checkpoints, and how it starts, stops and is read back.

    directory.py    the run directory: file names, config.json, logs, status.json, quality records, the lock
    checkpoint.py   checkpoints: save, rotate (the best kept), resume, load G or D alone
    trained.py      a checkpoint or run directory -> the rebuilt network (eval, export, verify, calc_metrics)
    interrupt.py    Ctrl-C / SIGTERM -> stop after the current step, save, exit 130 / 143
    distributed.py  joining a data-parallel job (msrun or a rank table)   rank_table.py  the HCCL rank table
"""

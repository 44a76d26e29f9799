"""Read an Ascend HCCL rank table (the v1.0 `server_list` / `device` layout) for scripts/run_distribute_train.sh.

    python -m src.run.rank_table TABLE [SERVER_ID]
prints the job's device count (RANK_SIZE) on the first line, then one "RANK_ID DEVICE_ID" line per device of
this server (SERVER_ID, or the first server in the table). A table that is missing, not JSON, or lists no
devices is one line on stderr and exit code 2.
"""
import json
import sys

from src.errors import UserError


def read_rank_table(path, server_id=None):
    """Returns (rank_size, [(rank_id, device_id), ...] for this server)."""
    try:
        with open(path) as f:
            table = json.load(f)
    except FileNotFoundError:
        raise UserError(f"rank table not found: {path}") from None
    except (OSError, ValueError) as error:
        raise UserError(f"rank table {path} is not valid JSON: {error}") from None
    servers = table.get("server_list") if isinstance(table, dict) else None
    if not isinstance(servers, list) or not servers:
        raise UserError(f"rank table {path} has no server_list (expected the v1.0 HCCL layout)")
    try:
        devices = {str(s["server_id"]): [(int(d["rank_id"]), int(d["device_id"])) for d in s.get("device", [])]
                   for s in servers}
    except (KeyError, TypeError, ValueError) as error:
        raise UserError(f"rank table {path}: a server or device entry lacks server_id/rank_id/device_id "
                        f"({error})") from None
    rank_size = sum(len(d) for d in devices.values())
    if rank_size == 0:
        raise UserError(f"rank table {path} lists no devices")
    server = str(server_id) if server_id else str(servers[0]["server_id"])
    if server not in devices:
        raise UserError(f"server {server} is not in rank table {path} (servers: {', '.join(devices)})")
    if not devices[server]:
        raise UserError(f"rank table {path} lists no devices for server {server}")
    return rank_size, devices[server]


def main(argv):
    if len(argv) not in (1, 2):
        print("usage: python -m src.run.rank_table TABLE [SERVER_ID]", file=sys.stderr)
        return 2
    try:
        rank_size, devices = read_rank_table(*argv)
    except UserError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(rank_size)
    for rank_id, device_id in devices:
        print(rank_id, device_id)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

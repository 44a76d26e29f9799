"""The Ascend rank table that scripts/run_distribute_train.sh reads (src/run/rank_table.py), in-process: the job's
device count, this server's (rank, device) pairs, and one clear error for a table that cannot be used. The launcher
itself starts real processes in tests/distributed/."""
import json

import pytest

from src.errors import UserError
from src.run.rank_table import main, read_rank_table

TWO_SERVERS = {"version": "1.0", "server_count": "2", "server_list": [
    {"server_id": "10.0.0.1", "device": [{"device_id": "0", "device_ip": "192.1.1.1", "rank_id": "0"},
                                         {"device_id": "1", "device_ip": "192.1.1.2", "rank_id": "1"}]},
    {"server_id": "10.0.0.2", "device": [{"device_id": "4", "device_ip": "192.1.2.5", "rank_id": "2"}]},
]}


def write_table(tmp_path, table):
    path = tmp_path / "rank_table.json"
    path.write_text(table if isinstance(table, str) else json.dumps(table))
    return str(path)


def test_the_job_size_and_this_servers_devices(tmp_path):
    path = write_table(tmp_path, TWO_SERVERS)
    assert read_rank_table(path) == (3, [(0, 0), (1, 1)])  # no server named: the first one
    assert read_rank_table(path, "10.0.0.2") == (3, [(2, 4)])


def test_the_launcher_reads_one_count_then_a_rank_and_device_per_line(tmp_path, capsys):
    assert main([write_table(tmp_path, TWO_SERVERS), "10.0.0.1"]) == 0
    assert capsys.readouterr().out.splitlines() == ["3", "0 0", "1 1"]
    assert main([str(tmp_path / "missing.json")]) == 2
    assert capsys.readouterr().err.splitlines() == [f"error: rank table not found: {tmp_path / 'missing.json'}"]


@pytest.mark.parametrize("table, server, message", [
    ("{not json", None, "is not valid JSON"),
    ({"version": "1.0"}, None, "has no server_list"),
    ({"server_list": [{"server_id": "a", "device": [{"device_id": "0"}]}]}, None, "lacks server_id/rank_id"),
    ({"server_list": [{"server_id": "a", "device": []}]}, None, "lists no devices"),
    (TWO_SERVERS, "10.0.0.9", "server 10.0.0.9 is not in rank table"),
])
def test_a_table_that_cannot_be_used_is_one_user_error(tmp_path, table, server, message):
    with pytest.raises(UserError, match=message):
        read_rank_table(write_table(tmp_path, table), server)

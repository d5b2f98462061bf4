"""Four lineage writers at once, 1,000 records each (~40 s on 2 cores); 250 each run by default."""

from lineage_fixtures import four_writers_lose_none


def test_four_processes_writing_a_thousand_records_each_lose_none(tmp_path):
    four_writers_lose_none(tmp_path, 1000)

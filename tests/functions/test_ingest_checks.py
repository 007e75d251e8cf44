"""The ingest validator without AWS (functions/ingest/upload_checks.py, parquet_footer.py): whatever
the bytes or the key, the outcome is a summary or UploadRejected, never another exception."""

import contextlib
import gzip
import io
import struct

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from parquet_footer import FooterError, footer_length, read_footer
from selfheal_bench.fixtures.aws import CHURN, churn_csv, churn_parquet
from selfheal_shared.config import load_config
from selfheal_shared.errors import UploadRejected
from selfheal_shared.names import MODEL_NAME
from upload_checks import (
    CHECKS,
    MAX_KEY_BYTES,
    check_csv,
    check_parquet,
    gunzip,
    ignore_reason,
    parse_upload_key,
    quarantine_names,
)

CONFIG = load_config(CHURN)
REGRESSION = load_config({"target": "churned", "problem": "regression", "metric": {"name": "rmse", "threshold": 1}})


def chunked(data: bytes, size: int) -> list[bytes]:
    return [data[i : i + size] for i in range(0, len(data), size)] or [b""]


def ranged(data: bytes):
    return lambda start, length: data[start : start + length]


def test_a_good_csv_is_summarised_whatever_the_chunking():
    data = churn_csv(75)
    for size in (1, 2, 7, 64, 10_000):
        summary = check_csv(chunked(data, size), CONFIG)
        assert (summary.rows, summary.columns) == (75, 4)


def test_crlf_and_cr_line_ends_split_across_chunks_are_one_line_end():
    data = churn_csv(60).replace(b"\n", b"\r\n")
    assert check_csv(chunked(data, 3), CONFIG).rows == 60
    assert check_csv(chunked(churn_csv(60).replace(b"\n", b"\r"), 5), CONFIG).rows == 60


def test_quoted_fields_may_hold_commas_and_newlines():
    data = churn_csv(59) + b'1,2,"pro, with\nnewline",yes\n'
    assert check_csv([data], CONFIG).rows == 60


def test_a_utf8_bom_is_not_part_of_the_first_column_name():
    assert check_csv([b"\xef\xbb\xbf" + churn_csv(60)], CONFIG).columns == 4


def test_a_regression_target_must_be_numeric():
    data = b"x,churned\n" + b"1,2.5\n" * 59 + b"1,lots\n"
    with pytest.raises(UploadRejected) as rejected:
        check_csv([data], REGRESSION)
    assert rejected.value.check == "target" and "row 60" in rejected.value.reason


def test_a_long_line_is_refused_before_it_is_buffered_whole():
    def endless():
        yield b"header,churned\n"
        while True:
            yield b"x" * 65536

    with pytest.raises(UploadRejected) as rejected:
        check_csv(endless(), CONFIG)
    assert rejected.value.check == "line_length"


def test_a_pyarrow_parquet_file_is_read_from_its_footer():
    data = churn_parquet(120)
    summary = check_parquet(ranged(data), len(data), CONFIG)
    assert (summary.rows, summary.columns) == (120, 4)


def test_footers_of_many_row_groups_and_nested_columns_are_read():
    table = pa.table({"id": list(range(100)), "churned": [i % 2 for i in range(100)],
                      "nested": [{"a": i, "b": [i, i]} for i in range(100)]})
    buffer = io.BytesIO()
    pq.write_table(table, buffer, row_group_size=7)
    data = buffer.getvalue()
    footer = data[-8 - footer_length(data[-8:]) : -8]

    summary = read_footer(footer, stats_for="churned")

    assert summary.rows == 100 and summary.columns == ["id", "churned", "nested"]
    assert summary.stats["churned"].null_count == 0 and not summary.stats["churned"].single_value


def test_an_all_null_parquet_target_is_refused():
    buffer = io.BytesIO()
    pq.write_table(pa.table({"x": list(range(60)), "churned": pa.array([None] * 60, type=pa.int64())}), buffer)
    data = buffer.getvalue()
    with pytest.raises(UploadRejected) as rejected:
        check_parquet(ranged(data), len(data), CONFIG)
    assert rejected.value.check == "target"


@pytest.mark.parametrize(("key", "reason"), [
    ("incoming/churn/a.csv", None),
    ("incoming/churn/", "folder marker"),
    ("datasets/churn/a.csv", "outside incoming/"),
])
def test_ignore_reason(key, reason):
    found = ignore_reason("data-bucket", key, "data-bucket")
    assert (found is None) if reason is None else (reason in found)
    assert "not the data bucket" in ignore_reason("other-bucket", key, "data-bucket")


# Properties

csv_like = st.lists(
    st.lists(st.text(alphabet=st.characters(codec="utf-8"), max_size=8), min_size=1, max_size=5), max_size=70
).map(lambda rows: ("tenure,monthly_charges,plan,churned\n" + "\n".join(",".join(r) for r in rows)).encode())


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(csv_like, st.integers(min_value=1, max_value=97))
def test_any_csv_like_text_gives_a_summary_or_a_named_rejection(data, chunk):
    try:
        summary = check_csv(chunked(data, chunk), CONFIG)
    except UploadRejected as rejected:
        assert rejected.check in CHECKS and rejected.reason
    else:
        assert summary.rows >= CONFIG.validation.min_rows and summary.columns >= 2


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=2000), st.integers(min_value=1, max_value=97))
def test_junk_bytes_as_csv_are_rejected_by_a_named_check(junk, chunk):
    with pytest.raises(UploadRejected) as rejected:
        check_csv(chunked(junk, chunk), CONFIG)
    assert rejected.value.check in CHECKS and rejected.value.reason


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=400), st.booleans(), st.booleans())
def test_junk_bytes_as_parquet_are_rejected_by_a_named_check(junk, magic_head, magic_tail):
    data = (b"PAR1" if magic_head else b"") + junk + (struct.pack("<I", len(junk)) + b"PAR1" if magic_tail else b"")
    with pytest.raises(UploadRejected) as rejected:
        check_parquet(ranged(data), len(data), CONFIG)
    assert rejected.value.check in CHECKS


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=600))
def test_junk_footer_bytes_raise_footer_error(footer):
    with pytest.raises(FooterError):
        read_footer(footer, stats_for="churned")


@settings(max_examples=100, deadline=None)
@given(st.data())
def test_a_real_footer_with_bytes_flipped_raises_only_footer_error(data):
    parquet = churn_parquet(60)
    footer = bytearray(parquet[-8 - footer_length(parquet[-8:]) : -8])
    for _ in range(data.draw(st.integers(min_value=1, max_value=5))):
        footer[data.draw(st.integers(min_value=0, max_value=len(footer) - 1))] = data.draw(st.integers(0, 255))
    with contextlib.suppress(FooterError):
        read_footer(bytes(footer), stats_for="churned")


@settings(max_examples=500, deadline=None)
@given(st.one_of(st.text(max_size=80).map(lambda t: "incoming/" + t), st.text(max_size=600)))
def test_any_key_parses_to_a_safe_upload_or_a_named_rejection(key):
    try:
        upload = parse_upload_key(key)
    except UploadRejected as rejected:
        assert rejected.check in CHECKS
    else:
        assert MODEL_NAME.fullmatch(upload.model)
        assert ".." not in key and "/" not in upload.file and len(key.encode()) <= MAX_KEY_BYTES
        assert all(character.isprintable() for character in upload.file)
    model, file = quarantine_names(key)
    assert model == "_invalid" or MODEL_NAME.fullmatch(model)
    assert file and "/" not in file and ".." not in file and file.isprintable()


def test_gzip_is_read_as_a_stream_of_bounded_pieces_whatever_the_chunking():
    text = churn_csv(500)
    data = gzip.compress(text[:1000]) + gzip.compress(text[1000:])  # two members
    for size in (1, 7, 64, 10_000):
        pieces = list(gunzip(chunked(data, size), limit=len(text)))
        assert b"".join(pieces) == text
    bomb = gzip.compress(b"0" * 50_000_000)
    with pytest.raises(UploadRejected) as caught:
        for piece in gunzip([bomb], limit=10_000_000):
            assert len(piece) <= 1024 * 1024
    assert caught.value.check == "size"


@pytest.mark.parametrize("key", ["incoming/churn/a.csv.gz", "incoming/churn/A.CSV.GZ"])
def test_a_gzip_csv_key_is_csv_with_gzip_compression(key):
    parsed = parse_upload_key(key)
    assert (parsed.format, parsed.compression) == ("csv", "gzip")


def test_a_gzip_file_named_csv_is_told_to_be_named_csv_gz():
    with pytest.raises(UploadRejected) as caught:
        check_csv([gzip.compress(churn_csv(60))], CONFIG)
    assert caught.value.reason == "the file looks like gzip, not CSV text: name it .csv.gz"


@pytest.mark.parametrize(("header", "hint"), [
    (b"tenure, monthly_charges, plan, churned", "(it has ' churned': remove the spaces around the name)"),
    (b"tenure,monthly_charges,plan,Churned", "(it has 'Churned': column names are case-sensitive)"),
])
def test_a_target_missed_by_spaces_or_case_gets_a_hint(header, hint):
    with pytest.raises(UploadRejected) as caught:
        check_csv([header + b"\n" + b"1,2,basic,yes\n" * 60], CONFIG)
    assert caught.value.reason == f"the target column 'churned' is not in the header {hint}"

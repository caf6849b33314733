"""Security issue items 4 and 5: what an uploaded CSV or Parquet file may expand to while it is read.

Compressed uploads are refused by their magic bytes (never their name) and CSV is read with
compression off; the row limit is applied while reading; the CSV header record is parsed with
its quoting under a byte cap before pandas sees the file; Parquet is streamed under running
row and decoded-byte caps. The session's service runs with a 4 MiB request limit.
"""

import bz2
import gzip
import io
import lzma
import zipfile

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from tests.utils.payloads import ROUTES
from vitalcheck import sources, uploads
from vitalcheck.training.loaders import DATA_FILES, data_file
from vitalcheck.uploads import CSV_HEADER_MAX_BYTES


def error(response):
    """The one error shape; returns {loc tuple: type}, and checks no value leaks into it."""
    assert response.status_code == 400, response.text
    body = response.json()
    assert isinstance(body["error"], str) and body["detail"], body
    assert all({"type", "loc", "msg"} <= set(e) and "input" not in e for e in body["detail"])
    return {tuple(e["loc"]): e["type"] for e in body["detail"]}


def upload(http, name, filename, content):
    return http.post(ROUTES[name] + "/file", files={"file": (filename, content, "application/octet-stream")})


@pytest.fixture
def api_with(svc, settings, service_module):
    """The service's API object with other limits (the session's limits are the defaults)."""
    from vitalcheck.api import VitalCheckAPI

    return lambda **limits: VitalCheckAPI(
        svc.api.registry, settings.model_copy(update=limits), service_module.INPUT_MODELS
    )


def _refused(call, *args):
    from pydantic import ValidationError

    with pytest.raises(ValidationError) as info:
        call(*args)
    return {tuple(e["loc"]): e["type"] for e in info.value.errors()}


@pytest.fixture
def stroke_csv(data_dir):
    return data_file("stroke", data_dir).read_bytes()


@pytest.fixture
def parsed(monkeypatch):
    """Every pandas parse of the test: [(reader, kwargs)]."""
    calls = []
    for reader in ("read_csv", "read_parquet"):
        original = getattr(pd, reader)

        def spy(*args, _original=original, _reader=reader, **kwargs):
            calls.append((_reader, kwargs))
            return _original(*args, **kwargs)

        monkeypatch.setattr(pd, reader, spy)
    return calls


# ---- item 4: compressed uploads ------------------------------------------------------------------


def _zip(data: bytes) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("rows.csv", data)
    return buffer.getvalue()


COMPRESSORS = {
    "gz": gzip.compress,
    "bz2": bz2.compress,
    "xz": lzma.compress,
    "zip": _zip,
    "zst": lambda data: pa.compress(data, codec="zstd", asbytes=True),  # a real zstd frame
    "lz4": lambda data: pa.compress(data, codec="lz4", asbytes=True),  # a real lz4 frame
}


@pytest.mark.parametrize("filename", ["rows.csv.{suffix}", "rows.csv.gz", "rows.csv"])
@pytest.mark.parametrize("suffix", list(COMPRESSORS))
def test_compressed_uploads_are_refused_by_their_bytes(http, stroke_csv, parsed, suffix, filename):
    """Regression: a 1.9 MB rows.csv.gz of 4 M rows was decompressed (+740 MB) before the row limit."""
    content = COMPRESSORS[suffix](stroke_csv[:5000].rsplit(b"\n", 1)[0])
    response = upload(http, "stroke", filename.format(suffix=suffix), content)
    assert error(response) == {("file",): "compressed_upload"}
    assert "compressed" in response.json()["detail"][0]["msg"]
    assert not parsed


@pytest.mark.parametrize("suffix", ["gz", "bz2", "xz", "zip", "zst", "tar", "tar.gz"])
def test_plain_csv_is_plain_whatever_its_name(http, stroke_csv, suffix):
    """The file name is irrelevant: a plain CSV called rows.csv.gz is read as plain CSV."""
    rows = stroke_csv[:5000].rsplit(b"\n", 1)[0]
    answer = upload(http, "stroke", f"rows.csv.{suffix}", rows)
    assert answer.status_code == 200, answer.text
    assert answer.json() == upload(http, "stroke", "rows.csv", rows).json()


def test_csv_is_read_with_compression_off(api_with, tmp_path, stroke_csv, parsed):
    path = tmp_path / "rows.csv.gz"
    path.write_bytes(stroke_csv[:5000].rsplit(b"\n", 1)[0])
    assert api_with().file("stroke", path).predictions
    assert [(reader, kwargs["compression"]) for reader, kwargs in parsed] == [("read_csv", None)]


# ---- item 4: the row limit is applied while reading ---------------------------------------------


def test_row_limit_stops_the_parser(api_with, tmp_path, data_dir, parsed):
    """A CSV of 40 x the limit is refused by the pre-scan after limit + 1 records, before pandas;
    read_source itself parses at most limit + 1 rows."""
    limit = 25
    source = pd.read_csv(data_file("stroke", data_dir))
    path = tmp_path / "rows.csv"
    source.head(40 * limit).to_csv(path, index=False)
    parsed.clear()
    assert _refused(api_with(max_batch_records=limit).file, "stroke", path) == {("file",): "too_many_rows"}
    assert not parsed
    sources.read_source(path, sources.UploadLimits(max_rows=limit, max_decoded_bytes=1 << 20))
    assert [(reader, kwargs["nrows"]) for reader, kwargs in parsed] == [("read_csv", limit + 1)]


def test_rows_at_the_limit_are_all_scored(api_with, tmp_path, data_dir):
    path = tmp_path / "rows.csv"
    pd.read_csv(data_file("stroke", data_dir)).head(25).to_csv(path, index=False)
    assert len(api_with(max_batch_records=25).file("stroke", path).predictions) == 25


def test_rows_wider_than_the_header_make_no_index(tmp_path, stroke_csv):
    """Regression: fields beyond the header became index levels (2 MB: 100 k levels, 18 s, +205 MB)."""
    header = stroke_csv.split(b"\n", 1)[0]
    path = tmp_path / "rows.csv"
    path.write_bytes(header + b"\n" + (b",".join([b"1"] * 3000) + b"\n") * 3)
    with pytest.warns(pd.errors.ParserWarning):
        raw = sources.read_source(path, sources.UploadLimits(max_rows=10, max_decoded_bytes=1 << 20))
    assert raw.index.nlevels == 1 and list(raw.index) == [0, 1, 2]
    assert len(raw.columns) == header.count(b",") + 1


@pytest.mark.parametrize("name", list(DATA_FILES))
def test_data_set_files_read_exactly_as_before(name, data_dir, tmp_path):
    """The upload limits change nothing for a normal file, CSV or Parquet."""
    path = data_file(name, data_dir)
    limits = sources.UploadLimits(max_rows=10_000, max_decoded_bytes=80 << 20)
    expected = sources.read_source(path)
    pd.testing.assert_frame_equal(sources.read_source(path, limits), expected)
    parquet = tmp_path / "rows.parquet"
    expected.to_parquet(parquet)
    pd.testing.assert_frame_equal(sources.read_source(parquet, limits), sources.read_source(parquet))


@pytest.mark.parametrize("name", ["stroke", "breast_cancer"])
def test_shared_files_uploaded_as_they_are_still_score(http, data_dir, name):
    path = data_file(name, data_dir)
    answer = upload(http, name, path.name, path.read_bytes())
    assert answer.status_code == 200, answer.text
    assert len(answer.json()["predictions"]) == len(pd.read_csv(path))


# ---- item 5: the CSV header record, parsed with its quoting and under a byte cap -----------------


@pytest.fixture
def never_parsed(monkeypatch):
    calls = []
    monkeypatch.setattr(sources, "read_source", lambda *a, **k: calls.append(a) or pytest.fail("parsed"))
    monkeypatch.setattr(pd, "read_csv", lambda *a, **k: calls.append(a) or pytest.fail("parsed"))
    return calls


def test_quoted_cell_header_with_100k_columns_is_refused_before_pandas(http, stroke_csv, never_parsed):
    """Regression: a first 1 MiB of one quoted cell hid 100 000 columns (3.6-4.8 s, +136 MB)."""
    header = stroke_csv.split(b"\n", 1)[0]
    wide = b'"' + b"x" * (1 << 20) + b'",' + b",".join(b"c%d" % i for i in range(100_000)) + b"," + header + b"\n"
    response = upload(http, "stroke", "rows.csv", wide)
    assert error(response) == {("file",): "header_too_long"}
    assert f"longer than {CSV_HEADER_MAX_BYTES} bytes" in response.json()["detail"][0]["msg"]
    assert not never_parsed


@pytest.mark.parametrize(
    "head",
    [
        b"c" * (CSV_HEADER_MAX_BYTES + 1) + b",",  # one long column name
        b"\n" * (CSV_HEADER_MAX_BYTES + 1),  # blank lines pandas would skip
        b'"' + b"a,\n" * (CSV_HEADER_MAX_BYTES // 3) + b'"',  # a quoted cell that does not end in time
    ],
    ids=["long name", "leading blank lines", "open quote"],
)
def test_header_record_over_the_byte_cap_is_refused(http, stroke_csv, never_parsed, head):
    response = upload(http, "stroke", "rows.csv", head + stroke_csv)
    assert error(response) == {("file",): "header_too_long"}
    assert not never_parsed


@pytest.mark.parametrize(
    "head",
    [
        b'"x\n' + b"y" * 20_000 + b'",',  # a line break inside a quoted cell ended "the first line"
        b"\n \n\t\r\n",  # leading blank lines were "the first line"
    ],
    ids=["quoted line break", "leading blank lines"],
)
def test_wide_header_behind_quotes_or_blank_lines_is_refused(http, never_parsed, head):
    columns = b",".join(b"c%d" % i for i in range(2000))
    response = upload(http, "stroke", "rows.csv", head + columns + b"\n" + b"1," * 2000 + b"\n")
    assert error(response) == {("file",): "too_many_columns"}
    assert not never_parsed


def test_commas_inside_a_quoted_header_cell_are_not_columns(http, data_dir):
    """Regression: the comma count refused a valid file whose first column name quotes commas."""
    source = pd.read_csv(data_file("diabetes", data_dir)).head(5)
    source.insert(0, "notes" + "," * 2000, "x")
    answer = upload(http, "diabetes", "rows.csv", source.to_csv(index=False))
    assert answer.status_code == 200, answer.text
    assert len(answer.json()["predictions"]) == 5


# ---- Parquet: running row and decoded-byte caps while reading -------------------------------------


def test_dictionary_string_bomb_is_refused_without_expanding(api_with, tmp_path, parsed):
    """One 2 kB string in 1000 rows: a tiny dictionary page whose footer size passes, 2 MB decoded."""
    path = tmp_path / "strings.parquet"
    table = pa.table({"Pregnancies": ["7" * 2000] * 1000})
    pq.write_table(table, path, compression="zstd", use_dictionary=True, store_schema=False, write_statistics=False)
    meta = pq.read_metadata(path)
    assert path.stat().st_size <= 4096 and meta.row_group(0).total_byte_size <= 4 * 4096  # the footer passes
    assert _refused(api_with(max_upload_bytes=4096).file, "diabetes", path) == {("file",): "upload_too_large"}
    assert not [reader for reader, _ in parsed if reader == "read_parquet"]


def test_parquet_rows_are_capped_while_reading(tmp_path, monkeypatch):
    path = tmp_path / "rows.parquet"
    pq.write_table(pa.table({"Glucose": list(range(5000))}), path, row_group_size=500)
    monkeypatch.setattr(pd, "read_parquet", lambda *a, **k: pytest.fail("read whole"))
    with pytest.raises(sources.SourceTooLarge) as info:
        sources.read_source(path, sources.UploadLimits(max_rows=1000, max_decoded_bytes=80 << 20))
    assert info.value.rule == "too_many_rows"


def test_parquet_decoded_bytes_are_capped_while_reading(tmp_path, monkeypatch):
    path = tmp_path / "rows.parquet"
    pq.write_table(pa.table({"Glucose": [float(i) for i in range(5000)]}), path, row_group_size=1000)
    monkeypatch.setattr(pd, "read_parquet", lambda *a, **k: pytest.fail("read whole"))
    with pytest.raises(sources.SourceTooLarge) as info:
        sources.read_source(path, sources.UploadLimits(max_rows=10_000, max_decoded_bytes=20_000))
    assert info.value.rule == "too_many_bytes"


# ---- rows wider than the header --------------------------------------------------------------------


def test_a_first_row_wider_than_the_header_is_refused_before_parsing(http, stroke_csv, parsed):
    """pandas would read every field of every row when the first row is wider than the header."""
    header = stroke_csv.split(b"\n", 1)[0]
    wide = b",".join([b"1"] * 100_000) + b"\n"
    assert error(upload(http, "stroke", "rows.csv", header + b"\n" + wide * 10)) == {("file",): "row_too_long"}
    short_wide = b",".join([b"1"] * 20) + b"\n"
    assert error(upload(http, "stroke", "rows.csv", header + b"\n" + short_wide * 10)) == {("file",): "row_too_wide"}
    assert not parsed


@pytest.mark.parametrize("fields", [100_000, 13])
def test_a_later_row_wider_than_the_header_is_refused_before_parsing(http, stroke_csv, parsed, fields):
    """pandas refused it too, but only after tokenizing it (was malformed_file / file_unreadable)."""
    header, first = stroke_csv.split(b"\n", 2)[:2]
    wide = b",".join([b"1"] * fields) + b"\n"
    rule = "row_too_long" if fields == 100_000 else "row_too_wide"
    assert error(upload(http, "stroke", "rows.csv", header + b"\n" + first + b"\n" + wide * 10)) == {("file",): rule}
    assert not parsed


def test_a_first_row_longer_than_the_cap_is_refused(http, stroke_csv, parsed):
    header = stroke_csv.split(b"\n", 1)[0]
    long_cell = b'"' + b"a" * (CSV_HEADER_MAX_BYTES + 10) + b'"'
    assert error(upload(http, "stroke", "rows.csv", header + b"\n" + long_cell + b",1\n")) == {
        ("file",): "row_too_long"
    }
    assert not parsed


# ---- only the model's columns are read; cells, row groups, records bounded before pandas -------------


def _insurance(data_dir, rows=75):
    return pd.read_csv(data_file("insurance", data_dir)).head(rows)


def _parquet(frame, **options):
    buffer = io.BytesIO()
    pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), buffer, **options)
    return buffer.getvalue()


@pytest.mark.parametrize("name", list(DATA_FILES))
def test_source_columns_are_exactly_what_features_reads(name, data_dir):
    raw = sources.read_source(data_file(name, data_dir)).head(20)
    columns = sources.source_columns(name)
    only = raw[[c for c in raw.columns if c in {" ".join(k.split()) for k in columns}]]
    assert len(only.columns) == len(columns)
    pd.testing.assert_frame_equal(sources.features(name, only), sources.features(name, raw))
    for column in columns:
        with pytest.raises(sources.MissingColumnError) as info:
            sources.features(name, only.drop(columns=" ".join(column.split())))
        assert info.value.column == column


def _old_answer(api, name, path):
    """What file() answered before (every column read, no pre-scan): predictions or the error locations."""
    from pydantic import ValidationError

    features = sources.features(name, sources.read_source(path))
    rows = features.astype(object).where(features.notna(), None).to_dict("records")
    try:
        return api.batch(name, api._row_adapters[name].validate_python(rows)).model_dump()
    except ValidationError as exc:
        return sorted(str(e["loc"][1:]) + e["type"] for e in exc.errors())


@pytest.mark.parametrize("name", list(DATA_FILES))
def test_every_data_set_file_scores_exactly_as_before(name, api_with, data_dir, tmp_path):
    from pydantic import ValidationError

    api = api_with()
    source = data_file(name, data_dir)
    parquet = tmp_path / "rows.parquet"
    sources.read_source(source).to_parquet(parquet)
    for path in (source, parquet):
        try:
            answer = api.file(name, path).model_dump()
        except ValidationError as exc:
            answer = sorted(str(e["loc"][1:]) + e["type"] for e in exc.errors())
        assert answer == _old_answer(api, name, path)


def test_parquet_long_strings_in_a_read_column_are_refused_before_pandas(http, data_dir, parsed):
    """Regression: 75 x 1 MiB `region` strings (1.9 kB zstd) passed the 80 MB cap: literal_error after +401 MB."""
    frame = _insurance(data_dir).assign(region="x" * (1 << 20))
    content = _parquet(frame, compression="zstd")
    assert len(content) < 8192
    assert error(upload(http, "insurance", "rows.parquet", content)) == {("file",): "upload_too_large"}
    frame = _insurance(data_dir).assign(region=["x" * 5000 + str(i) for i in range(75)])  # 375 kB: under the cap
    assert error(upload(http, "insurance", "rows.parquet", _parquet(frame))) == {("file",): "cell_too_long"}
    assert not [reader for reader, _ in parsed if reader == "read_parquet"]


def test_parquet_unused_columns_are_never_read(http, data_dir, parsed, monkeypatch):
    """Regression: 1 MiB strings in an extra column were decoded and converted (+204 MB); now not read."""
    seen = []
    features_of = sources.features_of
    monkeypatch.setattr(
        sources, "features_of", lambda spec, raw: seen.append(list(raw.columns)) or features_of(spec, raw)
    )
    frame = _insurance(data_dir)
    parsed.clear()
    answer = upload(
        http, "insurance", "rows.parquet", _parquet(frame.assign(notes="x" * (1 << 20)), compression="zstd")
    )
    assert answer.status_code == 200, answer.text
    assert answer.json() == upload(http, "insurance", "rows.parquet", _parquet(frame)).json()
    assert seen[0] == list(sources.source_columns("insurance"))
    assert [kwargs.get("columns") for reader, kwargs in parsed][0] == list(sources.source_columns("insurance"))


def test_parquet_with_many_row_groups_is_refused_from_its_footer(http, api_with, data_dir, parsed, tmp_path):
    """Regression: 10 000 one-row row groups (11 MB) were read: 5.6 s CPU, +352 MB."""
    content = _parquet(_insurance(data_dir, sources.MAX_ROW_GROUPS + 1), row_group_size=1)
    table = pa.Table.from_pandas(_insurance(data_dir), preserve_index=False)
    parsed.clear()
    assert pq.read_metadata(io.BytesIO(content)).num_row_groups == sources.MAX_ROW_GROUPS + 1
    assert error(upload(http, "insurance", "rows.parquet", content)) == {("file",): "too_many_row_groups"}
    path = tmp_path / "footer.parquet"  # a footer of 7 MB (3 MiB of key-value metadata) is refused unparsed
    pq.write_table(table.replace_schema_metadata({"notes": "x" * (3 << 20)}), path)
    assert _refused(api_with().file, "insurance", path) == {("file",): "footer_too_large"}
    assert not parsed


def test_parquet_row_groups_are_capped_while_reading(tmp_path, monkeypatch):
    path = tmp_path / "rows.parquet"
    pq.write_table(pa.table({"Glucose": list(range(100))}), path, row_group_size=10)
    monkeypatch.setattr(pd, "read_parquet", lambda *a, **k: pytest.fail("read whole"))
    with pytest.raises(sources.SourceTooLarge) as info:
        sources.read_source(path, sources.UploadLimits(max_rows=1000, max_decoded_bytes=1 << 20, max_row_groups=9))
    assert info.value.rule == "too_many_row_groups"


def test_parquet_nested_read_columns_are_refused(api_with, data_dir, tmp_path, parsed):
    frame = _insurance(data_dir).assign(region=[["x"] * 1000] * 75)
    path = tmp_path / "rows.parquet"
    path.write_bytes(_parquet(frame))
    assert _refused(api_with().file, "insurance", path) == {("file",): "unsupported_column_type"}
    assert not [reader for reader, _ in parsed if reader == "read_parquet"]


def test_the_decoded_byte_cap_is_what_a_legit_maximal_file_needs(api_with, data_dir, tmp_path):
    """16 MiB (not 4 x the upload limit, 80 MiB): 10 000 breast-cancer rows decode to ~2.6 MB and pass."""
    assert uploads.decoded_cap(api_with().settings) == sources.MAX_DECODED_BYTES == 16 << 20
    path = tmp_path / "rows.parquet"
    source = pd.read_csv(data_file("breast_cancer", data_dir))
    pd.concat([source] * 21).head(10_000).to_parquet(path)
    assert len(api_with().file("breast_cancer", path).predictions) == 10_000


@pytest.mark.parametrize(
    "tail, rule",
    [
        (b"," * (2 << 20) + b"\n", "row_too_long"),  # regression: 19 MB of commas, +204 MB in pandas' tokenizer
        (b"\0" * (2 << 20), "nul_byte"),  # regression: 19 MB of NUL bytes, +216 MB
        (b"1,2\0,3\n", "nul_byte"),
        (b"Male," + b"7" * 1001 + b",0\n", "cell_too_long"),
        (b'"' + b"x" * 5000 + b'",1\n', "cell_too_long"),
        (b'"' + b"a\n" * 40_000 + b'",1\n', "row_too_long"),  # a quoted cell of many lines
        (b",".join([b"1"] * 13) + b"\n", "row_too_wide"),
        (b'"1","2","3","4","5","6","7","8","9","10","11","12","13"\n', "row_too_wide"),
    ],
    ids=[
        "commas",
        "nul bytes",
        "one nul",
        "long cell",
        "long quoted cell",
        "long quoted record",
        "wide",
        "quoted wide",
    ],
)
def test_a_later_hostile_record_is_refused_before_pandas(http, stroke_csv, parsed, tail, rule):
    header, first, second = stroke_csv.split(b"\n", 3)[:3]
    content = header + b"\n" + first + b"\n" + second + b"\n" + tail
    assert error(upload(http, "stroke", "rows.csv", content)) == {("file",): rule}
    assert not parsed


def test_csv_extra_columns_are_not_parsed(http, stroke_csv, parsed, monkeypatch):
    """Regression: 990 one-character extra columns x 9 906 rows (19.9 MB) were all parsed: +150 MB, 2.2 s."""
    seen = []
    features_of = sources.features_of
    monkeypatch.setattr(
        sources, "features_of", lambda spec, raw: seen.append(list(raw.columns)) or features_of(spec, raw)
    )
    lines = stroke_csv.rstrip(b"\n").split(b"\n")[:300]
    extra, cells = b"".join(b",x%d" % i for i in range(900)), b",1" * 900
    content = b"\n".join([lines[0] + extra] + [line + cells for line in lines[1:]]) + b"\n"
    answer = upload(http, "stroke", "rows.csv", content)
    assert answer.status_code == 200, answer.text
    assert answer.json() == upload(http, "stroke", "rows.csv", b"\n".join(lines) + b"\n").json()
    assert seen[0] == list(sources.source_columns("stroke"))
    assert callable(parsed[0][1]["usecols"])


def test_csv_columns_match_with_stray_spaces_and_missing_ones_are_named(http, data_dir):
    source = pd.read_csv(data_file("insurance", data_dir)).head(5)
    spaced = source.rename(columns={"bmi": " bmi ", "smoker": "smoker  "})
    answer = upload(http, "insurance", "rows.csv", spaced.to_csv(index=False))
    assert answer.status_code == 200, answer.text
    assert answer.json() == upload(http, "insurance", "rows.csv", source.to_csv(index=False)).json()
    missing = upload(http, "insurance", "rows.csv", source.drop(columns="bmi").to_csv(index=False))
    assert error(missing) == {("file",): "missing_column"} and "'bmi'" in missing.json()["detail"][0]["msg"]
    unrelated = upload(http, "insurance", "rows.csv", "a,b\n1,2\n3,4\n")  # rows but none of the model's columns
    assert error(unrelated) == {("file",): "missing_column"}
    assert error(upload(http, "insurance", "rows.csv", "a,b\n")) == {("file",): "file_empty"}


def test_csv_with_a_byte_order_mark_and_crlf_scores_as_plain(http, stroke_csv):
    rows = stroke_csv[:5000].rsplit(b"\n", 1)[0]
    answer = upload(http, "stroke", "rows.csv", b"\xef\xbb\xbf" + rows.replace(b"\n", b"\r\n"))
    assert answer.status_code == 200, answer.text
    assert answer.json() == upload(http, "stroke", "rows.csv", rows).json()


def test_blank_line_padding_counts_against_the_row_limit(http, stroke_csv, parsed):
    """Regression: 20 MiB of blank lines after one row cost 10 s of parsing and answered 200."""
    header, first = stroke_csv.split(b"\n", 2)[:2]
    padded = header + b"\n" + first + b"\n" + b"\n" * 20_001
    assert error(upload(http, "stroke", "rows.csv", padded)) == {("file",): "too_many_blank_lines"}
    assert not parsed


def test_row_validation_stops_at_the_first_failing_chunk(svc, data_dir):
    """Regression: 10,000 rows of empty cells made 300,000 errors (11 s of CPU) before the 400."""
    from pydantic import ValidationError

    from vitalcheck.schemas.common import RECORD_CHUNK, validate_in_chunks

    validate = svc.api._row_adapters["insurance"].validate_python
    rows = [{"age_years": -1}] * 10_000
    with pytest.raises(ValidationError) as info:
        validate_in_chunks(rows, validate)
    assert max(e["loc"][0] for e in info.value.errors()) < RECORD_CHUNK
    good = pd.read_csv(data_file("insurance", data_dir)).head(1)
    record = {"age_years": int(good.age[0]), "sex": good.sex[0], "bmi_kg_m2": float(good.bmi[0]),
              "children": int(good.children[0]), "smoker": good.smoker[0] == "yes", "region": good.region[0]}  # fmt: skip
    late = [record] * 5000 + [{**record, "age_years": -1}] + [record] * 10
    with pytest.raises(ValidationError) as info:
        validate_in_chunks(late, validate)
    assert [e["loc"][:2] for e in info.value.errors()] == [(5000, "age_years")]
    assert len(validate_in_chunks([record] * 450, validate)) == 450


@pytest.mark.parametrize("spelling", ["age", " age", "age  "])
def test_a_repeated_source_column_is_refused_in_csv(http, data_dir, spelling, parsed):
    """Regression: pandas renamed the second ``age`` to ``age.1`` and the model read the first copy silently."""
    frame = _insurance(data_dir, rows=5)
    parsed.clear()
    text = frame.to_csv(index=False).splitlines()
    header, rows = text[0] + "," + spelling, [line + ",99" for line in text[1:]]
    body = error(upload(http, "insurance", "rows.csv", "\n".join([header, *rows]).encode()))
    assert body == {("file",): "repeated_column"}
    assert not parsed


def test_a_repeated_source_column_is_refused_in_parquet(http, data_dir, parsed):
    frame = _insurance(data_dir, rows=5)
    parsed.clear()
    table = pa.Table.from_arrays(
        [*pa.Table.from_pandas(frame, preserve_index=False).columns, pa.array([99] * 5)], [*frame.columns, "bmi"]
    )
    buffer = io.BytesIO()
    pq.write_table(table, buffer)
    assert error(upload(http, "insurance", "rows.parquet", buffer.getvalue())) == {("file",): "repeated_column"}
    assert not parsed


def test_a_repeated_column_the_model_does_not_read_is_accepted(http, data_dir):
    frame = _insurance(data_dir, rows=5)
    text = frame.to_csv(index=False).splitlines()
    csv_text = "\n".join([text[0] + ",note,note", *[line + ",a,b" for line in text[1:]]])
    response = upload(http, "insurance", "rows.csv", csv_text.encode())
    assert response.status_code == 200, response.text
    assert len(response.json()["predictions"]) == 5


@pytest.mark.parametrize(("column", "cell"), [("age", "9" * 309), ("age", "-" + "9" * 400), ("bmi", "1" + "0" * 310)])
def test_a_number_too_large_for_a_float_is_a_400(http, data_dir, column, cell):
    """Regression (probe 4): a 309-digit number overflowed pandas' parser and answered 500."""
    frame = _insurance(data_dir, rows=3).astype({column: object})
    frame.loc[1, column] = cell
    body = error(upload(http, "insurance", "rows.csv", frame.to_csv(index=False).encode()))
    assert set(body.values()) <= {"malformed_column", "finite_number"} and body  # a 400 naming the column


def _padded_varint(value: int, length: int) -> bytes:
    """``value`` as a varint of exactly ``length`` bytes (continuation bits padding it out)."""
    out = []
    for i in range(length):
        byte = (value >> (7 * i)) & 0x7F
        out.append(byte | (0x80 if i < length - 1 else 0))
    return bytes(out)


def _varint(value: int) -> bytes:
    return _padded_varint(value, max(1, (value.bit_length() + 6) // 7))


def _footer_understating_sizes(content: bytes, claimed: int) -> bytes:
    """Rewrite a Parquet footer so that every uncompressed size it states reads ``claimed`` (probe 4)."""
    meta = pq.read_metadata(io.BytesIO(content))
    true_sizes = {meta.row_group(0).total_byte_size}
    true_sizes |= {meta.row_group(0).column(j).total_uncompressed_size for j in range(meta.num_columns)}
    footer_length = int.from_bytes(content[-8:-4], "little")
    start = len(content) - 8 - footer_length
    footer = content[start:-8]
    for size in sorted(true_sizes, reverse=True):
        if size > claimed:
            encoded = _varint(2 * size)  # zigzag of a positive i64
            footer = footer.replace(encoded, _padded_varint(2 * claimed, len(encoded)))
    return content[:start] + footer + content[-8:]


def test_a_footer_that_understates_its_page_sizes_is_refused_before_decompressing(http, data_dir, parsed, monkeypatch):
    """Regression (probe 4): a 12 KB Parquet whose footer said 1,000 bytes held a 400 MB page (+1.1 GB RSS)."""
    frame = _insurance(data_dir, rows=1).assign(region="r" * (40 << 20))
    honest = _parquet(frame, compression="zstd", use_dictionary=False, data_page_size=1 << 30, write_statistics=False)
    lying = _footer_understating_sizes(honest, 1000)
    meta = pq.read_metadata(io.BytesIO(lying))
    assert max(meta.row_group(0).column(j).total_uncompressed_size for j in range(meta.num_columns)) <= 1000
    assert len(lying) < 100_000
    parsed.clear()
    monkeypatch.setattr(sources, "_check_parquet", lambda *a: pytest.fail("the pages were decompressed"))
    assert error(upload(http, "insurance", "rows.parquet", lying)) == {("file",): "upload_too_large"}
    assert not parsed


def test_page_headers_of_a_data_set_file_add_up_to_its_footer(data_dir, tmp_path):
    from vitalcheck.parquet_pages import declared_page_bytes

    path = tmp_path / "rows.parquet"
    path.write_bytes(_parquet(pd.read_csv(data_file("breast_cancer", data_dir)), compression="snappy"))
    meta = pq.read_metadata(path)
    names = [meta.schema.column(j).path for j in range(meta.num_columns)]
    footer = sum(meta.row_group(0).column(j).total_uncompressed_size for j in range(meta.num_columns))
    declared = declared_page_bytes(path, names, 1 << 30)
    assert 0.5 * footer < declared <= footer  # headers excluded from the pages' own sizes


@pytest.mark.parametrize("cell", ["1e19", "9223372036854775808", "1e308"])
def test_an_integer_too_large_for_int64_is_refused_for_its_size(http, data_dir, cell):
    """Regression (probe 5): 1e19 wrapped to a negative int64 and was refused as below the minimum."""
    frame = _insurance(data_dir, rows=3).astype({"age": object})
    frame.loc[1, "age"] = cell
    body = error(upload(http, "insurance", "rows.csv", frame.to_csv(index=False).encode()))
    assert list(body) == [("file", 1, "age_years")]
    assert body[("file", 1, "age_years")] in ("less_than_equal", "int_parsing_size")  # not greater_than_equal

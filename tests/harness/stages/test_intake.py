"""Intake invariant: a hostile archive or folder is refused with a stable reason id before anything is
written outside the store, a partial extraction never survives, and an accepted submission is stored
read-only under the sha256 of exactly the bytes that were validated, with its encoder located and its
requirements checked without executing one line of submission code.
"""

from __future__ import annotations

import hashlib
import json
import os
import stat
import zipfile
from pathlib import Path

import pytest

from harness.errors import IntakeError, UsageError
from harness.stages.intake import (
    EncoderRef,
    EncoderSource,
    IntakeLimits,
    IntakeRejected,
    RejectReason,
    Requirements,
    SourceKind,
    Submission,
    discover_encoder,
    escape_name,
    intake,
    parse_requirements,
)
from tests.support.archives import (
    STORED,
    TEMPLATE_FILES,
    TEMPLATE_PY,
    RawEntry,
    build_zip,
    zip_of,
)

R = RejectReason
CANARY = b"canary: must never change\n"


def snapshot(top: Path) -> dict[str, object]:
    """Every path under `top` with its type and content hash (links recorded, never followed)."""
    out: dict[str, object] = {}
    for dirpath, dirnames, filenames in os.walk(top):
        for name in dirnames + filenames:
            p = Path(dirpath, name)
            st = p.lstat()
            if stat.S_ISREG(st.st_mode):
                out[str(p.relative_to(top))] = ("f", hashlib.sha256(p.read_bytes()).hexdigest())
            else:
                out[str(p.relative_to(top))] = (stat.S_IFMT(st.st_mode),)
    return out


@pytest.fixture
def box(tmp_path: Path) -> Path:
    (tmp_path / "in").mkdir()
    (tmp_path / "store").mkdir()
    (tmp_path / "canary.txt").write_bytes(CANARY)
    (tmp_path / "x").mkdir()  # where a '../x'-style escape from the extraction dir could land
    return tmp_path


def put(box: Path, data: bytes, name: str = "sub.zip") -> Path:
    path = box / "in" / name
    path.write_bytes(data)
    return path


def assert_refused(box: Path, source: Path, reason: RejectReason, limits: IntakeLimits | None = None,
                   **kw: str) -> IntakeRejected:
    before = snapshot(box)
    with pytest.raises(IntakeRejected) as info:
        intake(source, box / "store", limits, **kw)
    assert info.value.reason is reason, str(info.value)
    assert isinstance(info.value, IntakeError)
    assert snapshot(box) == before, "something was written (or left) outside a rejected intake"
    assert (box / "canary.txt").read_bytes() == CANARY
    return info.value


def ok_entries() -> list[RawEntry]:
    return [RawEntry(n, d.encode()) for n, d in TEMPLATE_FILES.items()]


# ------------------------------------------------------------------ one test per reject reason

NAME_CASES = [
    ("/etc/x", R.ABSOLUTE_PATH),
    ("../x/evil.py", R.PARENT_TRAVERSAL),
    ("a/../../x/evil.py", R.PARENT_TRAVERSAL),
    ("\\\\host\\share\\x", R.BACKSLASH),
    ("a\\..\\..\\x", R.BACKSLASH),
    (b"evil\x00.py", R.NUL_BYTE),
    ("C:\\x", R.DRIVE_LETTER),
    ("c:/x", R.DRIVE_LETTER),
    ("\x1b[31mred.py", R.CONTROL_CHAR),
    ("gpj.\u202eexe.py", R.CONTROL_CHAR),
    ("a//b.py", R.INVALID_NAME),
    ("./a.py", R.INVALID_NAME),
    (b"bad\xff\xfe.py", None),  # undecodable bytes without the UTF-8 flag decode as cp437: allowed
    ("n" * 300, R.PATH_TOO_LONG),
    ("d/" * 40 + "x.py", R.TOO_DEEP),
]


@pytest.mark.parametrize(("name", "reason"), [c for c in NAME_CASES if c[1] is not None],
                         ids=[str(c[0])[:20] for c in NAME_CASES if c[1] is not None])
def test_unsafe_names_are_refused(box: Path, name: str | bytes, reason: RejectReason) -> None:
    src = put(box, build_zip(ok_entries() + [RawEntry(name, b"payload")]))
    err = assert_refused(box, src, reason)
    assert not list(box.rglob("evil*")) and not list((box / "x").iterdir())
    assert reason.value in str(err)


@pytest.mark.parametrize(("mode", "reason"), [
    (stat.S_IFLNK | 0o777, R.SYMLINK),
    (stat.S_IFCHR | 0o644, R.SPECIAL_FILE),
    (stat.S_IFBLK | 0o644, R.SPECIAL_FILE),
    (stat.S_IFIFO | 0o644, R.SPECIAL_FILE),
    (stat.S_IFSOCK | 0o644, R.SPECIAL_FILE),
])
def test_links_and_special_files_are_refused(box: Path, mode: int, reason: RejectReason) -> None:
    src = put(box, build_zip(ok_entries() + [RawEntry("link", b"/etc/passwd", mode=mode)]))
    assert_refused(box, src, reason)


def test_encrypted_entry_is_refused(box: Path) -> None:
    assert_refused(box, put(box, build_zip(ok_entries() + [RawEntry("w.bin", b"x" * 64, flags=0x1)])),
                   R.ENCRYPTED)


def test_unsupported_compression_is_refused(box: Path) -> None:
    src = put(box, build_zip(ok_entries() + [RawEntry("w.bin", b"x" * 64, method=93)]))  # zstd
    assert_refused(box, src, R.UNSUPPORTED_COMPRESSION)


def test_overlapping_entries_are_refused(box: Path) -> None:
    data = b"A" * 4096
    # the second central record points at the first entry's local header: one payload, two names
    src = put(box, build_zip([RawEntry("a.bin", data, method=STORED),
                              RawEntry("b.bin", data, method=STORED, header_offset=0)]))
    assert_refused(box, src, R.OVERLAPPING_ENTRIES)


def test_entry_starting_inside_another_is_refused(box: Path) -> None:
    # the classic overlap construction: b's local header and data live inside a's stored data
    b = RawEntry("b.bin", b"B" * 10, method=STORED)
    b_local = build_zip([b])[: 30 + len("b.bin") + 10]
    a = RawEntry("a.bin", b"A" * 50 + b_local + b"A" * 50, method=STORED)
    inside = 30 + len("a.bin") + 50
    src = put(box, build_zip([a, RawEntry("b.bin", b"B" * 10, method=STORED, header_offset=inside)]))
    assert zipfile.ZipFile(src).read("b.bin") == b"B" * 10  # zipfile alone would extract both
    assert_refused(box, src, R.OVERLAPPING_ENTRIES)


@pytest.mark.parametrize("names", [
    ["model.py", "model.py"],
    ["Model.py", "model.py"],
    ["caf\u00e9.py", "cafe\u0301.py"],  # NFC vs NFD
    ["weights", "weights/a.bin"],  # file and directory
    ["Dir/a.py", "dir/b.py"],  # directories differing in case only
])
def test_colliding_names_are_refused(box: Path, names: list[str]) -> None:
    src = put(box, build_zip(ok_entries() + [RawEntry(n, b"x") for n in names]))
    assert_refused(box, src, R.DUPLICATE_NAME)


def test_too_many_entries_is_refused_quickly(box: Path) -> None:
    src = put(box, build_zip(ok_entries() + [RawEntry(f"f{i}.txt", b"") for i in range(50)]))
    assert_refused(box, src, R.TOO_MANY_ENTRIES, IntakeLimits(max_entries=20))


def test_entry_over_size_limit_is_refused(box: Path) -> None:
    src = put(box, build_zip(ok_entries() + [RawEntry("w.bin", os.urandom(5000), method=STORED)]))
    assert_refused(box, src, R.TOO_LARGE, IntakeLimits(max_entry_bytes=4000))


def test_total_over_size_limit_is_refused(box: Path) -> None:
    big = [RawEntry(f"w{i}.bin", os.urandom(3000), method=STORED) for i in range(3)]
    assert_refused(box, put(box, build_zip(ok_entries() + big)), R.TOO_LARGE,
                   IntakeLimits(max_total_bytes=8000))


def test_declared_huge_size_is_refused_before_extraction(box: Path) -> None:
    src = put(box, build_zip(ok_entries() + [RawEntry("w.bin", b"x", method=STORED, declared_size=2**31)]))
    assert_refused(box, src, R.TOO_LARGE, IntakeLimits(max_total_bytes=2**30, max_entry_bytes=2**30))


def test_ratio_bomb_is_refused_before_writing(box: Path) -> None:
    src = put(box, build_zip(ok_entries() + [RawEntry("zeros.bin", bytes(10 * 2**20))]))
    assert src.stat().st_size < 30_000  # 10 MiB of zeros in a few KiB
    err = assert_refused(box, src, R.RATIO_EXCEEDED)
    assert err.entry == "zeros.bin"


def test_overall_ratio_counts_many_small_entries(box: Path) -> None:
    small = [RawEntry(f"z{i}.bin", bytes(200_000)) for i in range(10)]  # each under the 1 MiB floor
    assert_refused(box, put(box, build_zip(ok_entries() + small)), R.RATIO_EXCEEDED)


def test_bad_crc_is_corrupt_and_partial_tree_removed(box: Path) -> None:
    src = put(box, build_zip(ok_entries() + [RawEntry("w.bin", b"w" * 1000, crc=1234)]))
    assert_refused(box, src, R.CORRUPT)


def test_understated_size_is_caught_and_nothing_over_it_is_kept(box: Path) -> None:
    payload = os.urandom(2 * 2**20)
    src = put(box, build_zip(ok_entries() + [RawEntry("w.bin", payload, method=STORED, declared_size=10)]))
    err = assert_refused(box, src, R.CORRUPT, IntakeLimits(max_entry_bytes=1000))
    assert err.entry == "w.bin"


def test_byte_counter_stops_a_reader_that_outruns_the_declared_size(box: Path, monkeypatch) -> None:
    # A decompressor that lies (yields forever) must be cut off by the count of bytes written.
    class Endless:
        def __init__(self) -> None:
            self.given = 0

        def read(self, n: int) -> bytes:
            self.given += n
            return bytes(n)

        def __enter__(self):  # noqa: ANN204
            return self

        def __exit__(self, *a: object) -> None:
            pass

    streams: list[Endless] = []
    monkeypatch.setattr(zipfile.ZipFile, "open", lambda self, *a, **k: streams.append(Endless()) or streams[-1])
    src = put(box, build_zip([RawEntry("template.py", os.urandom(3000), method=STORED)]))
    assert_refused(box, src, R.CORRUPT)
    assert streams and streams[0].given <= 2 * 2**20  # stopped after the first oversize chunk


@pytest.mark.parametrize(("data", "reason"), [
    (b"", R.EMPTY),
    (build_zip([]), R.EMPTY),
    (build_zip([RawEntry("only/", b""), RawEntry("only/dirs/", b"")]), R.EMPTY),
    (build_zip([RawEntry("__MACOSX/._template.py", b"junk")]), R.EMPTY),
    (zip_of(TEMPLATE_FILES)[: len(zip_of(TEMPLATE_FILES)) // 2], R.TRUNCATED),
    (b"this is a text file, not an archive\n", R.NOT_A_ZIP),
    (b"\x1f\x8b\x08\x00" + bytes(100), R.NOT_A_ZIP),  # a gzip
])
def test_invalid_archives_get_a_clean_reason(box: Path, data: bytes, reason: RejectReason) -> None:
    assert_refused(box, put(box, data), reason)


def test_every_problem_is_collected_and_the_first_few_reported(box: Path) -> None:
    bad = [RawEntry(f"../evil{i}.py", b"") for i in range(8)] + [RawEntry("/abs", b"")]
    err = assert_refused(box, put(box, build_zip(ok_entries() + bad)), R.PARENT_TRAVERSAL)
    assert len(err.problems) == 9
    assert "and 4 more" in str(err)


def test_hostile_names_are_escaped_in_messages(box: Path) -> None:
    name = "\x1b[2J\x1b[31mpwned\u202e.py"
    err = assert_refused(box, put(box, build_zip(ok_entries() + [RawEntry(name, b"")])), R.CONTROL_CHAR)
    text = str(err)
    assert "\x1b" not in text and "\u202e" not in text
    assert "\\x1b[2J" in text and "\\u202e" in text
    assert escape_name("a'b\\c\n") == "'a\\'b\\\\c\\x0a'"


# ------------------------------------------------------------------ accepted archives

def test_template_archive_is_stored_read_only_and_content_addressed(box: Path) -> None:
    data = zip_of(TEMPLATE_FILES)
    sub = intake(put(box, data), box / "store")
    sha = hashlib.sha256(data).hexdigest()
    assert isinstance(sub, Submission) and sub.sha256 == sha and sub.source_kind is SourceKind.ZIP
    assert sub.store_dir == box / "store" / sha and sub.root == sub.store_dir / "files"
    assert sub.archive is not None and sub.archive.read_bytes() == data
    assert sub.encoder == EncoderRef("template.py", "TemplateEncoder", EncoderSource.XARES_RULE)
    assert sub.requirements == Requirements(("loguru", "torch==2.2.1"), "2.2.1", "==2.2.1")
    assert (sub.file_count, sub.total_bytes) == (3, sum(len(v) for v in TEMPLATE_FILES.values()))
    assert (sub.root / "template.py").read_text() == TEMPLATE_PY
    for p in [sub.root, *sub.root.rglob("*")]:
        assert stat.S_IMODE(p.stat().st_mode) & 0o222 == 0, f"{p} is writable"
    assert not [p for p in (box / "store").iterdir() if p.name != sha]
    assert json.loads(json.dumps(sub.to_dict()))["encoder"]["class"] == "TemplateEncoder"


def test_nested_archive_stays_a_file(box: Path) -> None:
    inner = zip_of({"inner_secret.py": "x = 1\n"})
    sub = intake(put(box, build_zip(ok_entries() + [RawEntry("weights/inner.zip", inner)])), box / "store")
    assert (sub.root / "weights" / "inner.zip").read_bytes() == inner
    assert not list(sub.root.rglob("inner_secret.py"))


def test_github_download_zip_shape_uses_the_single_folder(box: Path) -> None:
    entries = [RawEntry("xares-template-main/", b"")] + [
        RawEntry(f"xares-template-main/{n}", d.encode()) for n, d in TEMPLATE_FILES.items()]
    sub = intake(put(box, build_zip(entries)), box / "store")
    assert sub.root.name == "xares-template-main" and sub.root.parent.name == "files"
    assert sub.encoder.spec == "template.py:TemplateEncoder"
    assert sub.requirements.torch_pin == "2.2.1"


def test_macosx_junk_is_dropped_and_ds_store_kept(box: Path) -> None:
    extra = [RawEntry("__MACOSX/", b""), RawEntry("__MACOSX/._template.py", b"\x00\x05\x16\x07"),
             RawEntry(".DS_Store", b"Bud1")]
    sub = intake(put(box, build_zip(ok_entries() + extra)), box / "store")
    assert sub.ignored_entries == 2
    assert not (sub.root / "__MACOSX").exists() and (sub.root / ".DS_Store").read_bytes() == b"Bud1"


def test_macosx_entries_are_still_validated(box: Path) -> None:
    src = put(box, build_zip(ok_entries() + [RawEntry("__MACOSX/../../x/evil.py", b"")]))
    assert_refused(box, src, R.PARENT_TRAVERSAL)


def test_encoder_failure_stores_nothing(box: Path) -> None:
    src = put(box, zip_of({"a.py": "class AEncoder: pass\n", "b.py": "class BEncoder: pass\n"}))
    assert_refused(box, src, R.ENCODER_AMBIGUOUS)
    sub = intake(src, box / "store", encoder="b.py:BEncoder")
    assert sub.encoder == EncoderRef("b.py", "BEncoder", EncoderSource.OVERRIDE)


# ------------------------------------------------------------------ store: idempotence, crash recovery

def test_second_intake_is_a_no_op(box: Path) -> None:
    src = put(box, zip_of(TEMPLATE_FILES))
    first = intake(src, box / "store")
    before = snapshot(box / "store")
    mtime = first.store_dir.stat().st_mtime_ns
    assert intake(src, box / "store") == first
    assert snapshot(box / "store") == before and first.store_dir.stat().st_mtime_ns == mtime


def test_crash_leftovers_are_cleaned_and_half_entries_redone(box: Path) -> None:
    src = put(box, zip_of(TEMPLATE_FILES))
    first = intake(src, box / "store")
    (first.store_dir / "intake.json").unlink()  # crash before the marker: entry is incomplete
    os.chmod(first.root, 0o755)
    (first.root / "template.py").chmod(0o644)
    (first.root / "template.py").write_text("garbage")  # and its contents are not to be trusted
    leftover = box / "store" / ".intake-99999"
    (leftover / "files").mkdir(parents=True)
    (leftover / "files" / "half.bin").write_bytes(b"x")
    (leftover / "files").chmod(0o555)
    again = intake(src, box / "store")
    assert again == first and (again.root / "template.py").read_text() == TEMPLATE_PY
    assert (again.store_dir / "intake.json").is_file() and not leftover.exists()


def test_bad_arguments_are_usage_errors(box: Path) -> None:
    with pytest.raises(UsageError):
        intake(box / "in" / "missing.zip", box / "store")
    (box / "notadir").write_text("")
    with pytest.raises(UsageError):
        intake(put(box, zip_of(TEMPLATE_FILES)), box / "notadir")
    with pytest.raises(UsageError):
        intake(put(box, zip_of(TEMPLATE_FILES)), box / "store", encoder="template.py")
    with pytest.raises(UsageError):
        IntakeLimits(max_entries=0)


# ------------------------------------------------------------------ folders

def make_folder(path: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        (path / name).parent.mkdir(parents=True, exist_ok=True)
        (path / name).write_text(text)
    return path


def test_folder_intake_hashes_canonically(box: Path) -> None:
    a = make_folder(box / "in" / "a", {**TEMPLATE_FILES, "sub/w.bin": "w"})
    b = make_folder(box / "in" / "b", {"sub/w.bin": "w", **TEMPLATE_FILES})
    sa, sb = intake(a, box / "store"), intake(b, box / "store")
    assert sa == sb and sa.source_kind is SourceKind.FOLDER and sa.archive is None
    assert sa.encoder.class_name == "TemplateEncoder" and sa.file_count == 4
    (b / "template.py").chmod(0o755)  # the owner-execute bit is part of the canonical form
    assert intake(b, box / "store").sha256 != sa.sha256


def test_folder_with_symlink_is_refused(box: Path) -> None:
    folder = make_folder(box / "in" / "f", TEMPLATE_FILES)
    (folder / "labels").symlink_to(box / "canary.txt")
    assert_refused(box, folder, R.SYMLINK)


def test_folder_with_fifo_is_refused(box: Path) -> None:
    folder = make_folder(box / "in" / "f", TEMPLATE_FILES)
    os.mkfifo(folder / "pipe")
    assert_refused(box, folder, R.SPECIAL_FILE)


def test_folder_with_case_collision_is_refused(box: Path) -> None:
    folder = make_folder(box / "in" / "f", {**TEMPLATE_FILES, "Model.py": "", "model.py": ""})
    assert_refused(box, folder, R.DUPLICATE_NAME)


def test_folder_limits_apply(box: Path) -> None:
    folder = make_folder(box / "in" / "f", {**TEMPLATE_FILES, **{f"f{i}": "" for i in range(30)}})
    assert_refused(box, folder, R.TOO_MANY_ENTRIES, IntakeLimits(max_entries=10))


def test_store_inside_folder_is_a_usage_error(box: Path) -> None:
    folder = make_folder(box / "in" / "f", TEMPLATE_FILES)
    with pytest.raises(UsageError):
        intake(folder, folder / "store")


# ------------------------------------------------------------------ encoder discovery (never imports)

def tree(tmp_path: Path, files: dict[str, str]) -> Path:
    return make_folder(tmp_path / "root", files)


def find(tmp_path: Path, files: dict[str, str], override: str | None = None) -> EncoderRef:
    return discover_encoder(tree(tmp_path, files), override)


def refused(tmp_path: Path, files: dict[str, str], reason: RejectReason, override: str | None = None) -> str:
    with pytest.raises(IntakeRejected) as info:
        find(tmp_path, files, override)
    assert info.value.reason is reason, str(info.value)
    return str(info.value)


def test_single_encoder_by_the_xares_rule(tmp_path: Path) -> None:
    assert find(tmp_path, TEMPLATE_FILES) == EncoderRef("template.py", "TemplateEncoder", EncoderSource.XARES_RULE)


def test_discovery_never_executes_code(tmp_path: Path) -> None:
    canary = tmp_path / "executed"
    code = f"open({str(canary)!r}, 'w').write('x')\nclass BoomEncoder: pass\n"
    assert find(tmp_path, {"boom.py": code}).class_name == "BoomEncoder"
    assert not canary.exists()


def test_manifest_names_the_encoder(tmp_path: Path) -> None:
    files = {"a.py": "class AEncoder: pass\n", "b.py": "class BEncoder: pass\n",
             "aecc.json": json.dumps({"encoder": "b.py:BEncoder"})}
    assert find(tmp_path, files) == EncoderRef("b.py", "BEncoder", EncoderSource.MANIFEST)


def test_manifest_may_point_into_a_subfolder(tmp_path: Path) -> None:
    files = {"pkg/enc.py": "class DeepEncoder: pass\n", "aecc.json": '{"encoder": "pkg/enc.py:DeepEncoder"}'}
    assert find(tmp_path, files).file == "pkg/enc.py"


@pytest.mark.parametrize(("manifest", "reason"), [
    ("{not json", R.MANIFEST_INVALID),
    ('["template.py:TemplateEncoder"]', R.MANIFEST_INVALID),
    ('{"encoder": "template.py:TemplateEncoder", "extra": 1}', R.MANIFEST_INVALID),
    ('{"encoder": "template.py"}', R.MANIFEST_INVALID),
    ('{"encoder": "../x.py:XEncoder"}', R.MANIFEST_INVALID),
    ('{"encoder": "template.py:Template"}', R.MANIFEST_INVALID),  # must end in Encoder
    ('{"encoder": "missing.py:MissingEncoder"}', R.ENCODER_NOT_FOUND),
    ('{"encoder": "template.py:OtherEncoder"}', R.ENCODER_NOT_FOUND),
])
def test_bad_manifests_are_refused(tmp_path: Path, manifest: str, reason: RejectReason) -> None:
    refused(tmp_path, {**TEMPLATE_FILES, "aecc.json": manifest}, reason)


def test_override_wins_over_manifest_and_rule(tmp_path: Path) -> None:
    files = {"a.py": "class AEncoder: pass\n", "b.py": "class BEncoder: pass\n",
             "aecc.json": '{"encoder": "a.py:AEncoder"}'}
    assert find(tmp_path, files, "b.py:BEncoder") == EncoderRef("b.py", "BEncoder", EncoderSource.OVERRIDE)


def test_override_naming_a_missing_class_is_refused(tmp_path: Path) -> None:
    refused(tmp_path, TEMPLATE_FILES, R.ENCODER_NOT_FOUND, "template.py:NopeEncoder")


def test_no_encoder(tmp_path: Path) -> None:
    text = refused(tmp_path, {"model.py": "class Model: pass\n"}, R.ENCODER_NOT_FOUND)
    assert "aecc.json" in text and "--encoder" in text


def test_several_encoders_are_listed(tmp_path: Path) -> None:
    text = refused(tmp_path, {"a.py": "class BaseEncoder: pass\nclass MyEncoder(BaseEncoder): pass\n",
                              "b.py": "class OtherEncoder: pass\n"}, R.ENCODER_AMBIGUOUS)
    assert "a.py:BaseEncoder" in text and "a.py:MyEncoder" in text and "b.py:OtherEncoder" in text
    assert "aecc.json" in text and "--encoder" in text


def test_import_bound_names_count_like_xares_does(tmp_path: Path) -> None:
    refused(tmp_path, {"enc.py": "from transformers import WhisperEncoder\nclass MyEncoder: pass\n"},
            R.ENCODER_AMBIGUOUS)
    assert find(tmp_path / "x", {"enc.py": "from transformers import WhisperEncoder as MyEncoder\n"}) \
        == EncoderRef("enc.py", "MyEncoder", EncoderSource.XARES_RULE)


def test_import_of_a_local_definition_is_not_counted_twice(tmp_path: Path) -> None:
    files = {"model.py": "class FooEncoder: pass\n", "template.py": "from model import FooEncoder\n"}
    assert find(tmp_path, files) == EncoderRef("model.py", "FooEncoder", EncoderSource.XARES_RULE)


def test_template_checker_is_ignored(tmp_path: Path) -> None:
    assert find(tmp_path, TEMPLATE_FILES).file == "template.py"
    refused(tmp_path / "x", {"audio_encoder_checker.py": TEMPLATE_FILES["audio_encoder_checker.py"]},
            R.ENCODER_NOT_FOUND)


def test_syntax_error_names_file_and_line(tmp_path: Path) -> None:
    text = refused(tmp_path, {"template.py": TEMPLATE_PY, "broken.py": "x = 1\n\ndef f(:\n"}, R.SYNTAX_ERROR)
    assert "'broken.py'" in text and "line 3" in text


# A fork of jimbozhang/xares-template with the participant's encoder in its own file, the upstream
# template.py and audio_encoder_checker.py unchanged beside it (tests/fixtures/encoders/template_fork_*).
FORK = Path(__file__).resolve().parents[2] / "fixtures" / "encoders" / "template_fork_good"


def fork_files() -> dict[str, str]:
    return {p.name: p.read_text() for p in FORK.iterdir() if p.is_file()}


def test_template_fork_layout_is_found_by_the_rule(tmp_path: Path) -> None:
    assert discover_encoder(FORK) == EncoderRef("my_encoder.py", "MyEncoder", EncoderSource.XARES_RULE)
    assert find(tmp_path, fork_files()).spec == "my_encoder.py:MyEncoder"


def test_template_fork_zip_passes_intake(box: Path) -> None:
    sub = intake(put(box, zip_of({f"xares-template-main/{n}": t for n, t in fork_files().items()})), box / "store")
    assert sub.encoder == EncoderRef("my_encoder.py", "MyEncoder", EncoderSource.XARES_RULE)
    assert sub.requirements.torch_pin == "2.2.1"


def test_edited_template_in_a_fork_is_refused_with_candidates_and_two_ways(tmp_path: Path) -> None:
    files = fork_files()
    files["template.py"] = files["template.py"].replace("self.output_dim = 128", "self.output_dim = 64")
    text = refused(tmp_path, files, R.ENCODER_AMBIGUOUS)
    assert "my_encoder.py:MyEncoder (class)" in text and "template.py:MyEncoder (class)" in text
    assert '{"encoder": "my_encoder.py:MyEncoder"}' in text and "--encoder my_encoder.py:MyEncoder" in text


def test_unchanged_template_alone_is_still_the_encoder(tmp_path: Path) -> None:
    files = {n: t for n, t in fork_files().items() if n != "my_encoder.py"}
    assert find(tmp_path, files) == EncoderRef("template.py", "MyEncoder", EncoderSource.XARES_RULE)


# ------------------------------------------------------------------ requirements.txt

HASH = "sha256:" + "ab" * 32


@pytest.mark.parametrize("text", [
    "",
    "# only a comment\n\n",
    "numpy\n",
    "numpy>=1.24,<2  # trailing comment\n",
    "requests[socks]>=2.31 ; python_version >= '3.8'\n",
    f"soundfile==0.12.1 --hash={HASH}\n",
    f"soundfile==0.12.1 \\\n    --hash={HASH} \\\n    --hash {HASH}\n",
    "loguru\ntorch==2.2.1\n",
    "\ufeffnumpy\n".lstrip("\ufeff"),
])
def test_requirements_accepted(text: str) -> None:
    reqs = parse_requirements(text)
    assert all(line and not line.startswith("#") for line in reqs.lines)


@pytest.mark.parametrize(("text", "reason"), [
    ("-i https://evil.example/simple\n", R.REQUIREMENT_OPTION),
    ("--index-url=https://evil.example/simple\n", R.REQUIREMENT_OPTION),
    ("--extra-index-url https://evil.example/simple\n", R.REQUIREMENT_OPTION),
    ("--no-index\n", R.REQUIREMENT_OPTION),
    ("-f ./wheels\n", R.REQUIREMENT_OPTION),
    ("--find-links https://x\n", R.REQUIREMENT_OPTION),
    ("--trusted-host evil.example\n", R.REQUIREMENT_OPTION),
    ("-e git+https://github.com/x/y#egg=y\n", R.REQUIREMENT_OPTION),
    ("--editable .\n", R.REQUIREMENT_OPTION),
    ("-r ../other.txt\n", R.REQUIREMENT_OPTION),
    ("-c constraints.txt\n", R.REQUIREMENT_OPTION),
    ("--pre\n", R.REQUIREMENT_OPTION),
    (f"--hash={HASH}\n", R.REQUIREMENT_OPTION),
    ("numpy --hash=md5:abc\n", R.REQUIREMENT_OPTION),
    ("numpy --no-binary :all:\n", R.REQUIREMENT_OPTION),
    ("git+https://github.com/x/y\n", R.REQUIREMENT_URL),
    ("https://evil.example/pkg-1.0-py3-none-any.whl\n", R.REQUIREMENT_URL),
    ("file:///tmp/pkg\n", R.REQUIREMENT_URL),
    ("pkg @ https://evil.example/pkg.whl\n", R.REQUIREMENT_URL),
    ("./local_pkg\n", R.REQUIREMENT_PATH),
    ("../pkg\n", R.REQUIREMENT_PATH),
    ("/abs/pkg\n", R.REQUIREMENT_PATH),
    ("pkg-1.0-py3-none-any.whl\n", R.REQUIREMENT_PATH),
    ("vendor/pkg\n", R.REQUIREMENT_PATH),
    ("numpy>=>1\n", R.REQUIREMENT_SYNTAX),
    ("!!!\n", R.REQUIREMENT_SYNTAX),
])
def test_requirements_refused(text: str, reason: RejectReason) -> None:
    with pytest.raises(IntakeRejected) as info:
        parse_requirements("numpy\n" + text)
    assert info.value.reason is reason, str(info.value)
    assert "line 2" in str(info.value)


def test_torch_named_twice_is_refused() -> None:
    with pytest.raises(IntakeRejected) as info:
        parse_requirements("torch==2.2.1\nnumpy\ntorch==2.3.0\n")
    assert info.value.reason is R.REQUIREMENT_SYNTAX and "line 3" in str(info.value)


@pytest.mark.parametrize(("text", "pin", "spec"), [
    ("numpy\n", None, None),
    ("torch==2.2.1\n", "2.2.1", "==2.2.1"),
    ("Torch == 2.2.1 ; sys_platform == 'linux'\n", "2.2.1", "==2.2.1"),
    ("torch>=2.1\n", None, ">=2.1"),
    ("torch==2.2.*\n", None, "==2.2.*"),
    ("torch\n", None, None),
])
def test_torch_pin(text: str, pin: str | None, spec: str | None) -> None:
    reqs = parse_requirements(text)
    assert (reqs.torch_pin, reqs.torch_specifier) == (pin, spec)


def test_refused_requirements_file_refuses_the_intake(box: Path) -> None:
    files = {**TEMPLATE_FILES, "requirements.txt": "torch==2.2.1\n--extra-index-url https://evil.example\n"}
    err = assert_refused(box, put(box, zip_of(files)), R.REQUIREMENT_OPTION)
    assert "line 2" in str(err) and "--extra-index-url" in str(err)

"""The gist-memory command end to end on a tiny model directory, and its one-line errors."""

import pickle
import subprocess
import sys

import pytest

from gist_memory.cli import main
from tiny import save_tiny

TEXT = "The lighthouse keeper wrote the passkey 48213 in the logbook before the storm. " * 4


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    return save_tiny(tmp_path_factory.mktemp("tiny"))


def run(capsys, *args):
    """Run the CLI in-process; returns (exit code, stdout, stderr)."""
    try:
        main([str(a) for a in args])
        code = 0
    except SystemExit as exit_:
        code = exit_.code
    out = capsys.readouterr()
    return code, out.out, out.err


def user_error(capsys, *args) -> str:
    code, _, err = run(capsys, *args)
    lines = err.strip().splitlines()
    assert code == 2 and len(lines) == 1 and lines[0].startswith("gist-memory: error: "), err
    return lines[0]


def test_compress_info_ask(model, tmp_path, capsys):
    base, adapter = model
    doc = tmp_path / "doc.txt"
    doc.write_text(TEXT)
    code, out, _ = run(capsys, "compress", doc, "--model", base, "--adapter", adapter)
    cache = tmp_path / "doc.gist"  # the default output: FILE with the suffix .gist
    assert code == 0 and cache.is_file() and "gist KV entries" in out

    code, out, _ = run(capsys, "info", cache)
    assert code == 0
    info = dict(line.split(":", 1) for line in out.splitlines())
    n = len(TEXT.encode())  # the tiny tokenizer has one token per byte; chunks of 48, k=4
    assert info["gist KV entries"].split()[0] == str(4 * -(-n // 48))
    assert info["positions"].strip() == f"48..51 (x{n // 48}), {n % 48}..{n % 48 + 3}"
    assert info["made with"].strip() == f"--model {base} --adapter {adapter}"

    # ask loads the model recorded in the cache; the answer goes to stdout, the costs to stderr
    code, out, err = run(capsys, "ask", cache, "What is the passkey?", "--max-new-tokens", 5)
    assert code == 0 and "ms to first token" in err and "tokens/s" in err and "28 gist KV entries" in err
    code, streamed, _ = run(capsys, "ask", cache, "What is the passkey?", "--max-new-tokens", 5, "--stream")
    assert code == 0 and streamed == out


def test_compress_without_adapter_takes_gist_settings(model, tmp_path, capsys):
    base, _ = model
    doc = tmp_path / "doc.txt"
    doc.write_text(TEXT)
    out_path = tmp_path / "k2.gist"
    code, out, _ = run(capsys, "compress", doc, "-o", out_path, "--model", base, "--adapter", "none",
                       "--gist-tokens", 2, "--chunk-tokens", 100)
    assert code == 0 and out_path.is_file()
    code, out, _ = run(capsys, "info", out_path)
    assert "num gist tokens: 2" in " ".join(out.split()) and "chunk tokens: 100" in " ".join(out.split())
    code, _, err = run(capsys, "ask", out_path, "Who wrote it?", "--max-new-tokens", 3)
    assert code == 0, err


def test_mask_png(model, tmp_path, capsys):
    base, _ = model
    png = tmp_path / "mask.png"
    code, _, _ = run(capsys, "mask", "-o", png, "--chunk-lengths", "6,5", "--gist-tokens", 2, "--post", 4)
    assert code == 0 and png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    png2 = tmp_path / "text.png"
    code, _, err = run(capsys, "mask", "-o", png2, "--text", TEXT, "--question", "Passkey?", "--answer", "48213",
                       "--model", base, "--chunk-tokens", 32)
    assert code == 0 and png2.is_file(), err


@pytest.mark.parametrize("args", [["--gist-tokens", 0], ["--gist-tokens", -1], ["--gist-tokens", 257],
                                  ["--gist-tokens", 0, "--text", TEXT, "--question", "Passkey?"]])
def test_mask_without_gist_tokens_is_a_one_line_error_and_draws_nothing(tmp_path, capsys, args):
    png = tmp_path / "mask.png"
    line = user_error(capsys, "mask", "-o", png, *args)
    assert line == f"gist-memory: error: --gist-tokens must be an integer in [1, 256], got {args[1]}"
    assert not png.exists()


def test_bad_files_give_one_line_errors(model, tmp_path, capsys):
    base, _ = model
    binary = tmp_path / "data.bin"
    binary.write_bytes(bytes(range(256)))
    assert "binary" in user_error(capsys, "compress", binary, "--model", base)
    latin = tmp_path / "latin.txt"
    latin.write_bytes("caf\xe9 cr\xe8me".encode("latin-1"))
    assert "not UTF-8" in user_error(capsys, "compress", latin, "--model", base)
    for content in ("", " \n\t\n"):
        empty = tmp_path / "empty.txt"
        empty.write_text(content)
        assert "empty" in user_error(capsys, "compress", empty, "--model", base)
    assert "No such file" in user_error(capsys, "compress", tmp_path / "missing.txt", "--model", base)
    pickled = tmp_path / "evil.gist"
    pickled.write_bytes(pickle.dumps({"keys": [1, 2, 3]}))
    assert "pickle" in user_error(capsys, "ask", pickled, "What?")
    assert "pickle" in user_error(capsys, "info", pickled)
    doc = tmp_path / "doc.txt"
    doc.write_text(TEXT)
    assert "no such model directory" in user_error(capsys, "compress", doc, "--model", "./nope")


def test_cache_from_another_model(model, tmp_path, capsys):
    base, adapter = model
    other, _ = save_tiny(tmp_path / "other", seed=1, adapter=False)
    doc = tmp_path / "doc.txt"
    doc.write_text(TEXT)
    run(capsys, "compress", doc, "--model", other, "--adapter", "none", "--gist-tokens", 4, "--chunk-tokens", 48)
    line = user_error(capsys, "ask", tmp_path / "doc.gist", "What?", "--model", base, "--adapter", "none")
    assert "base_model" in line and "re-compress" in line


def test_console_entry_point_exits_2_without_traceback(tmp_path):
    empty = tmp_path / "empty.txt"
    empty.write_text("")
    proc = subprocess.run([sys.executable, "-m", "gist_memory.cli", "compress", str(empty)],
                          capture_output=True, text=True)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [f"gist-memory: error: {empty} is empty (or only whitespace); "
                                                "there is nothing to compress"]


def test_bad_numbers_give_one_line_errors(model, tmp_path, capsys):
    base, _ = model
    doc = tmp_path / "doc.txt"
    doc.write_text(TEXT)
    assert "num_gist_tokens" in user_error(capsys, "compress", doc, "--model", base, "--gist-tokens", 0)
    assert "batch_size" in user_error(capsys, "compress", doc, "--model", base, "--batch-size", 0)
    run(capsys, "compress", doc, "--model", base, "--gist-tokens", 4, "--chunk-tokens", 48)
    assert "max_new_tokens" in user_error(capsys, "ask", tmp_path / "doc.gist", "Why?", "--max-new-tokens", 0)

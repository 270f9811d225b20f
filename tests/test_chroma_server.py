"""GistMemory against a Chroma server (``chroma run`` on 127.0.0.1) instead of the embedded index."""

from __future__ import annotations

import socket
import subprocess
import sys
import time

import pytest

from gist_memory import GistMemory
from tiny import HashEmbedder, tiny_documents, tiny_gist_model


# `chroma run`, started the way the `chroma` script that chromadb installs starts it, from this
# interpreter: it runs wherever chromadb imports (a declared dependency), whether or not that
# script is on PATH or beside sys.executable.
CHROMA = [sys.executable, "-c", "import sys; from chromadb.cli.cli import app; sys.argv[0] = 'chroma'; app()"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def chroma_server(tmp_path):
    """A Chroma server on a free local port with its own data directory, stopped afterwards."""
    import chromadb
    from chromadb.config import Settings

    port = free_port()
    server = subprocess.Popen([*CHROMA, "run", "--path", str(tmp_path / "server-data"),
                               "--host", "127.0.0.1", "--port", str(port)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                client = chromadb.HttpClient(host="127.0.0.1", port=port,
                                             settings=Settings(anonymized_telemetry=False))
                client.heartbeat()
                break
            except Exception:  # not up yet: connection refused until the server listens
                if server.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"chroma run did not come up on port {port} (exit code {server.poll()})")
                time.sleep(0.2)
        yield client, port
    finally:
        server.terminate()
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


@pytest.mark.guarantee  # docs/pipeline.md "Scale: a Chroma server"
def test_ingest_and_query_through_a_chroma_server(tmp_path, chroma_server):
    client, port = chroma_server
    gm = tiny_gist_model()
    with GistMemory(persist_dir=tmp_path / "caches", model=gm, embedder=HashEmbedder(), client=client,
                    collection="served") as mem:
        ids = mem.add(tiny_documents(4), progress=False)
        assert ids == ["doc0", "doc1", "doc2", "doc3"]
        assert client.get_collection("served").count() == mem.stats()["chunks"]
        assert mem.retrieve("topic2 orchard", top_k=1)[0].doc_id == "doc2"
        for mode in ("rag", "gist", "hybrid", "full"):
            ans = mem.query("topic3 lamp", mode=mode, max_new_tokens=2)
            assert ans.sources and ans.sources[0].doc_id == "doc3"
        mem.delete("doc0")
        assert client.get_collection("served").count() == mem.stats()["chunks"]
        manifest = mem.index.description
    assert manifest == {"kind": "http", "host": "127.0.0.1", "port": port, "collection": "served"}
    # The caches stay on local disk; the vectors stay on the server: reopening needs both.
    with GistMemory.load(tmp_path / "caches", model=gm, embedder=HashEmbedder(), client=client) as again:
        assert [d["doc_id"] for d in again.list_documents()] == ["doc1", "doc2", "doc3"]
        assert again.query("topic1", mode="hybrid", max_new_tokens=2).sources[0].doc_id == "doc1"


@pytest.mark.guarantee  # docs/pipeline.md "A Chroma server": no text leaves unless asked; save() copies vectors
def test_the_server_gets_no_text_and_save_copies_the_vectors(tmp_path, chroma_server):
    from gist_memory import InputError

    client, _ = chroma_server
    gm = tiny_gist_model()
    docs = tiny_documents(3)
    with GistMemory(persist_dir=tmp_path / "a", model=gm, embedder=HashEmbedder(), client=client,
                    collection="private") as mem:
        mem.add(docs, progress=False)
        kept = client.get_collection("private").get(include=["documents", "metadatas"])
        assert kept["ids"] and all(d is None for d in kept["documents"])  # ids, vectors, metadata only
        assert not any(docs[0]["text"][:40] in str(m) for m in kept["metadatas"])
        assert mem.query("topic1", mode="rag", max_new_tokens=1).sources[0].text  # the text comes from disk
        with pytest.raises(InputError, match="vectors live on a Chroma server.*collection="):
            mem.save(tmp_path / "copy")
        mem.save(tmp_path / "copy", collection="private-copy")
        with pytest.raises(InputError, match="already has a collection 'private-copy'"):
            mem.save(tmp_path / "copy2", collection="private-copy")
        mem.delete("doc0")  # the original changes; the copy must not
        left = client.get_collection("private").count()
    with GistMemory.load(tmp_path / "copy", model=gm, embedder=HashEmbedder(), client=client) as copy:
        assert copy.index.name == "private-copy"
        assert [d["doc_id"] for d in copy.list_documents()] == ["doc0", "doc1", "doc2"]
        assert client.get_collection("private-copy").count() == copy.stats()["chunks"] > left
        assert copy.retrieve("topic0 river", top_k=3)[0].doc_id in {"doc0", "doc1", "doc2"}
    with GistMemory(persist_dir=tmp_path / "b", model=gm, embedder=HashEmbedder(), client=client,
                    collection="with-text", index_text=True) as opted:
        opted.add(docs[:1], progress=False)
        assert any(d and d in docs[0]["text"] for d in client.get_collection("with-text").get(
            include=["documents"])["documents"])

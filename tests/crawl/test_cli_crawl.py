"""`corpus crawl` on the command line: a crawl and an archive ingestion end with a summary table; user
mistakes are one clear line and a non-zero exit."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from corpus.cli import app
from tests.crawl.faultserver import FaultServer, Reply, html
from tests.crawl.test_warc import archives

PARA = "<p>A quiet street in the old town, where the baker opens before sunrise and the cafe after nine.</p>" * 3


def test_crawl_command_prints_a_summary(tmp_path: Path) -> None:
    routes = {"/": Reply(body=html("Home", PARA, ["/a.html", "/missing.html"]).encode()),
              "/a.html": Reply(body=html("A", PARA).encode())}
    with FaultServer(routes) as server:
        result = CliRunner().invoke(app, ["crawl", server.url + "/", "-o", str(tmp_path / "out"), "--fast",
                                          "--no-sitemaps", "--max-pages", "10", "-s", "RETRY_TIMES=0",
                                          "--per-domain", "3", "--delay", "0.01", "--contact", "https://me.test/"])
    assert result.exit_code == 0, result.output
    assert "documents" in result.output and "http_404" in result.output
    assert json.loads((tmp_path / "out" / "stats.json").read_text())["documents"] == 2
    settings = json.loads((tmp_path / "out" / "crawl_config.json").read_text())["settings"]
    assert settings["CONCURRENT_REQUESTS_PER_DOMAIN"] == 3 and settings["DOWNLOAD_DELAY"] == 0.01  # beat --fast
    assert settings["RETRY_TIMES"] == 0 and settings["USER_AGENT"].endswith("(+https://me.test/)")


def test_from_warc_command(tmp_path: Path) -> None:
    folder = archives(tmp_path / "archives")
    result = CliRunner().invoke(app, ["crawl", "--from-warc", str(folder / "*.warc.gz"), "--from-warc",
                                      str(folder / "b.warc"), "-o", str(tmp_path / "out"), "--workers", "1"])
    assert result.exit_code == 0, result.output
    assert json.loads((tmp_path / "out" / "stats.json").read_text())["documents"] == 3  # a.warc.gz + b.warc


def test_user_mistakes_are_one_line(tmp_path: Path) -> None:
    seeds = tmp_path / "seeds.txt"
    seeds.write_text("http://ok.test/\nftp://nope\n")
    cases = [
        (["crawl", "--seeds", str(seeds), "-o", str(tmp_path / "o")], "seeds.txt:2"),
        (["crawl", "--from-warc", str(tmp_path / "none-*.warc.gz"), "-o", str(tmp_path / "o")], "no such file"),
        (["crawl", "http://ok.test/", "-s", "NOEQUALS", "-o", str(tmp_path / "o")], "expected KEY=VALUE"),
        (["crawl", "http://ok.test/", "--max-size", "lots", "-o", str(tmp_path / "o")], "expected a size"),
        (["crawl", "http://ok.test/", "--favor", "speed", "-o", str(tmp_path / "o")], "choose one of"),
        (["crawl", "-o", str(tmp_path / "o")], "give at least one seed URL"),
    ]
    for args, message in cases:
        result = CliRunner().invoke(app, args)
        assert result.exit_code == 1, (args, result.output)
        assert message in " ".join(result.output.split()) and "Traceback" not in result.output, result.output

"""Crawling and web-archive ingestion: Scrapy spiders, trafilatura extraction, WARC/WET, resumable shard output."""

__version__ = "0.1"

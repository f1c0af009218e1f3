"""The core every capability builds on: Document, Stage, shard io, config, executors, stats.

Imports point one way: the app (corpus.cli, corpus.demo, corpus.report) -> the capabilities
(corpus.crawl, corpus.curate, corpus.train) -> this core. Nothing here imports a capability or the app,
and nothing here pulls in Scrapy, fastText or torch (see docs/architecture.md).
"""

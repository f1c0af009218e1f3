"""Crawling: Scrapy spiders, trafilatura extraction, shard-writing item pipelines."""

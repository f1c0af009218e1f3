"""Curation stages: normalisation, language ID, quality filters, deduplication."""

"""LlamaIndex fixtures: a deterministic local embedding, so retrieval needs no network."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
from llama_index.core import Settings
from llama_index.core.embeddings import BaseEmbedding

VOCABULARY = ("techno", "detroit", "jazz", "orleans", "music", "city", "origin", "started")


class WordCountEmbedding(BaseEmbedding):
    """Counts of a fixed vocabulary: deterministic, local, and good enough to rank."""

    def _embed(self, text: str) -> list[float]:
        words = re.findall(r"\w+", text.lower())
        return [float(words.count(term)) + 0.01 for term in VOCABULARY]

    def _get_query_embedding(self, query: str) -> list[float]:
        return self._embed(query)

    def _get_text_embedding(self, text: str) -> list[float]:
        return self._embed(text)

    async def _aget_query_embedding(self, query: str) -> list[float]:
        return self._embed(query)


@pytest.fixture
def embed_model() -> Iterator[WordCountEmbedding]:
    previous = Settings._embed_model
    model = WordCountEmbedding()
    Settings.embed_model = model
    yield model
    Settings._embed_model = previous

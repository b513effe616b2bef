"""LlamaIndex RAG: a VectorStoreIndex queried through SteerLM with steered attributes.

steerlm-server &
python examples/llamaindex_rag.py
"""

from __future__ import annotations

import re

from llama_index.core import Document, VectorStoreIndex
from llama_index.core.embeddings import BaseEmbedding

from llamaindex_steerlm import SteerLMChat

DOCUMENTS = [
    "Techno music started in Detroit in the 1980s.",
    "Jazz started in New Orleans in the early 20th century.",
    "Reggae started in Jamaica in the late 1960s.",
]


class KeywordEmbedding(BaseEmbedding):
    """A toy local embedding (word hashes into 64 buckets); use a real one in production."""

    def _embed(self, text: str) -> list[float]:
        vector = [0.0] * 64
        for word in re.findall(r"\w+", text.lower()):
            vector[sum(map(ord, word)) % 64] += 1.0
        return vector

    def _get_query_embedding(self, query: str) -> list[float]:
        return self._embed(query)

    def _get_text_embedding(self, text: str) -> list[float]:
        return self._embed(text)

    async def _aget_query_embedding(self, query: str) -> list[float]:
        return self._embed(query)


def main() -> None:
    index = VectorStoreIndex.from_documents(
        [Document(text=text) for text in DOCUMENTS], embed_model=KeywordEmbedding()
    )
    llm = SteerLMChat(max_tokens=48)
    engine = index.as_query_engine(llm=llm.with_attributes(helpfulness=9), similarity_top_k=1)
    answer = engine.query("Where did techno music start?")
    print("context:", answer.source_nodes[0].node.get_content())
    print("answer: ", answer)


if __name__ == "__main__":
    main()

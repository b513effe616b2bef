"""LangChain RAG: an in-memory vector store, a retriever and SteerLM in one chain.

steerlm-server &
python examples/langchain_rag.py
"""

from __future__ import annotations

import re

from langchain_core.documents import Document
from langchain_core.embeddings import Embeddings
from langchain_core.output_parsers import StrOutputParser
from langchain_core.prompts import ChatPromptTemplate
from langchain_core.runnables import RunnablePassthrough
from langchain_core.vectorstores import InMemoryVectorStore

from langchain_steerlm import SteerLMChat

DOCUMENTS = [
    "Techno music started in Detroit in the 1980s.",
    "Jazz started in New Orleans in the early 20th century.",
    "Reggae started in Jamaica in the late 1960s.",
]


class KeywordEmbeddings(Embeddings):
    """A toy local embedding (word hashes into 64 buckets); use a real one in production."""

    def embed_query(self, text: str) -> list[float]:
        vector = [0.0] * 64
        for word in re.findall(r"\w+", text.lower()):
            vector[sum(map(ord, word)) % 64] += 1.0
        return vector

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        return [self.embed_query(text) for text in texts]


def main() -> None:
    store = InMemoryVectorStore.from_texts(DOCUMENTS, KeywordEmbeddings())
    retriever = store.as_retriever(search_kwargs={"k": 1})
    prompt = ChatPromptTemplate.from_messages(
        [("system", "Answer from this context only:\n{context}"), ("human", "{question}")]
    )

    def join(docs: list[Document]) -> str:
        return "\n".join(doc.page_content for doc in docs)

    llm = SteerLMChat(max_tokens=48)
    chain = (
        {"context": retriever | join, "question": RunnablePassthrough()}
        | prompt
        | llm.bind(attributes={"helpfulness": 9})
        | StrOutputParser()
    )
    question = "Where did techno music start?"
    print("question:", question)
    print("context: ", join(retriever.invoke(question)))
    print("answer:  ", chain.invoke(question))


if __name__ == "__main__":
    main()
